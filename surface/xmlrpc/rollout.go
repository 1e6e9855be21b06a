package xmlrpc

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// whereKeys and rollbackKeys are what where and rollback accept in
// request_data.
var (
	whereKeys    = []string{"env", "project"}
	rollbackKeys = []string{"env", "project", "to"}
)

func (g *Gateway) registerRollout(s *Server) {
	s.Register("where", Method{
		Func: g.where,
		Help: `where(credentials, request_data) => [{host, target, transaction, installed_at, ...}].
Which transaction is live on every host registered for the environment, for
each named target of the project, as relman where shows it. request_data:
project and env. Each struct has host and target, and transaction,
installed_at, sha256, path, behavior, releases (kept, oldest first) when the
host says them; a host or target that could not answer has error instead.
Faults: 1 unknown project, 3 credentials rejected, 4 bad request_data,
5 relman could not ask, 6 not allowed to read the project.`,
		Signatures: [][]string{{"array", "struct", "struct"}},
	})
	s.Register("rollback", Method{
		Func: g.rollback,
		Help: `rollback(credentials, request_data) => transaction id.
Starts a rollback transaction, as relman rollback does: on every host of the
environment, each named target of the project installed with the release
behavior switches back to the release before the current one, or to the
release of transaction to. request_data: project, env, and to (optional).
Follow it with query_transaction: ROLLBACK_COMPLETED, ROLLBACK_FAILED,
REJECTED or CANCELLED. Faults: 1 unknown project, 3 credentials rejected,
4 bad request_data, 5 relman could not start it, 6 not allowed to install
the project into the environment.`,
		Signatures: [][]string{{"string", "struct", "struct"}},
	})
}

// projectEnv reads (credentials, request_data) holding a project, an
// environment and the keys of accepted, checking both against the config.
func (g *Gateway) projectEnv(ctx context.Context, method string, accepted []string, ps []any) (auth.Principal, map[string]string, error) {
	if len(ps) != 2 {
		return auth.Principal{}, nil, Faultf(CodeInvalidParams, "%s takes (credentials, request_data); got %d params", method, len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return auth.Principal{}, nil, err
	}
	data, ok := ps[1].(map[string]any)
	if !ok {
		return auth.Principal{}, nil, Faultf(CodeInvalidParams, "request_data must be a struct, not %s", TypeName(ps[1]))
	}
	if err := refuseUnknown("request_data", method, data, accepted); err != nil {
		return auth.Principal{}, nil, err
	}
	out := map[string]string{}
	for k := range data {
		s, err := stringMember("request_data", data, k)
		if err != nil {
			return auth.Principal{}, nil, err
		}
		out[k] = strings.TrimSpace(s)
	}
	project, env := out["project"], out["env"]
	if project == "" {
		return auth.Principal{}, nil, Faultf(CodeBadRequest, "request_data needs a project; list them with list_projects")
	}
	if _, ok := g.Config.Projects[project]; !ok {
		return auth.Principal{}, nil, Faultf(CodeUnknownProject, "unknown project %q; this manager releases: %s", clip(project), strings.Join(g.projects(), ", "))
	}
	if env == "" {
		return auth.Principal{}, nil, Faultf(CodeBadRequest, "%s needs env in request_data (one of %s)", method, strings.Join(g.envs(), ", "))
	}
	if _, ok := g.Config.Environments[env]; !ok {
		return auth.Principal{}, nil, Faultf(CodeBadRequest, "unknown env %q; this manager knows %s", clip(env), strings.Join(g.envs(), ", "))
	}
	if to := out["to"]; strings.IndexFunc(to, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 || len(to) > 255 {
		return auth.Principal{}, nil, Faultf(CodeBadRequest, "request_data to must be a transaction id (find them with relman list), at most 255 printable characters without spaces")
	}
	return p, out, nil
}

func (g *Gateway) where(ctx context.Context, ps []any) (any, error) {
	p, data, err := g.projectEnv(ctx, "where", whereKeys, ps)
	if err != nil {
		return nil, err
	}
	project, env := data["project"], data["env"]
	if g.Config.Auth.Enabled() {
		if err := g.allowed(ctx, p, auth.ActionRead, project, env); err != nil {
			return nil, err
		}
	}
	res, err := transaction.Where(ctx, g.Client, g.Config.ManagerQueue, project, env)
	if err != nil {
		g.log().Warn("xml-rpc where failed", "project", project, "env", env, "err", err)
		return nil, Faultf(CodeInternal, "%v", err)
	}
	return whereRows(res), nil
}

// whereRows flattens a where into one struct per (host, named target),
// sorted, as relman where prints its table; a host that did not answer is
// one struct with its error. Empty fields are left out: XML-RPC has no
// null without an extension.
func whereRows(res *workflows.WhereResult) []any {
	out := []any{}
	for _, h := range res.HostNames() {
		if msg, ok := res.Errors[h]; ok {
			out = append(out, map[string]any{"host": h, "error": msg})
			continue
		}
		targets := slices.Sorted(maps.Keys(res.Hosts[h]))
		for _, t := range targets {
			li := res.Hosts[h][t]
			row := map[string]any{"host": h, "target": t}
			for k, v := range map[string]string{"transaction": li.Transaction, "sha256": li.SHA256, "path": li.Path, "behavior": li.Behavior, "error": li.Error} {
				if v != "" {
					row[k] = v
				}
			}
			if !li.InstalledAt.IsZero() {
				row["installed_at"] = li.InstalledAt.UTC().Truncate(time.Second)
			}
			if len(li.Releases) > 0 {
				row["releases"] = slices.Clone(li.Releases)
			}
			out = append(out, row)
		}
	}
	return out
}

func (g *Gateway) rollback(ctx context.Context, ps []any) (any, error) {
	p, data, err := g.projectEnv(ctx, "rollback", rollbackKeys, ps)
	if err != nil {
		return nil, err
	}
	req := workflows.Request{Project: data["project"], Env: data["env"], Action: workflows.ActionRollback, Requester: p.ID()}
	var sign *transaction.Signer
	if g.Config.Auth.Enabled() {
		// The rollback action (granted by install too), as the Rollback
		// workflow checks it.
		if err := g.allowed(ctx, p, auth.ActionRollback, req.Project, req.Env); err != nil {
			return nil, err
		}
		sign = g.signer(p)
	}
	txid, err := transaction.StartRollback(ctx, g.Client, g.Config.ManagerQueue, req, data["to"], sign)
	if err != nil {
		g.log().Warn("xml-rpc rollback: start failed", "project", req.Project, "env", req.Env, "err", err)
		return nil, Faultf(CodeInternal, "could not start the rollback: %v", err)
	}
	g.log().Info("xml-rpc rollback", "transaction", txid, "project", req.Project, "env", req.Env, "to", data["to"], "requester", req.Requester)
	return txid, nil
}
