package xmlrpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// request_action: a request parsed, checked and signed, then started.

func (g *Gateway) requestAction(ctx context.Context, ps []any) (any, error) {
	if len(ps) != 2 {
		return nil, Faultf(CodeInvalidParams, "request_action takes (credentials, request_data); got %d params", len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return nil, err
	}
	who := p.ID()
	data, ok := ps[1].(map[string]any)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "request_data must be a struct, not %s", TypeName(ps[1]))
	}
	req, requestID, err := g.parseRequest(data)
	if err != nil {
		return nil, err
	}
	req.Requester = who
	sign, err := g.requestSigner(ctx, p, req)
	if err != nil {
		return nil, err
	}
	txid, err := transaction.StartSigned(ctx, g.Client, g.Config.ManagerQueue, requestID, req, sign)
	switch {
	case errors.Is(err, transaction.ErrBadRequestID):
		return nil, Faultf(CodeBadRequest, "request_data request_id: %v", err)
	case errors.Is(err, transaction.ErrRequestIDReused):
		return nil, Faultf(CodeBadRequest, "%v", err)
	}
	if err != nil {
		g.log().Warn("xml-rpc request_action: start failed", "project", req.Project, "err", err)
		return nil, Faultf(CodeInternal, "could not start the transaction: %v", err)
	}
	g.log().Info("xml-rpc request_action", "transaction", txid, "project", req.Project, "action", req.Action, "env", req.Env, "requester", who)
	return txid, nil
}

// signer signs for a principal the gateway authenticated; anonymous has no
// realm to vouch for it and goes unsigned (nil).
func (g *Gateway) signer(p auth.Principal) *transaction.Signer {
	if p.Realm == "" {
		return nil
	}
	return &transaction.Signer{ID: auth.GatewaySigner(p), Sign: func(payload []byte) *auth.Signature {
		s := auth.SignAsGateway(g.Secret, p, payload, time.Now())
		return &s
	}}
}

// parseRequest turns request_data into a Request, checking what can be
// checked here; what needs the registry is the workflow's to reject.
func (g *Gateway) parseRequest(data map[string]any) (workflows.Request, string, error) {
	var req workflows.Request
	if err := refuseUnknown("request_data", "", data, RequestKeys); err != nil {
		return req, "", err
	}
	var action, requestID, pause string
	var ro rollout.Policy
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"project", &req.Project}, {"action", &action}, {"env", &req.Env},
		{"branch", &req.Source.Branch}, {"tag", &req.Source.Tag}, {"revision", &req.Source.Revision}, {"url", &req.Source.URL},
		{"request_id", &requestID}, {"from", &req.From},
		{"strategy", &ro.Strategy}, {"batch", &ro.Batch}, {"pause", &pause}, {"max_failures", &ro.MaxFailures},
	} {
		s, err := stringMember("request_data", data, f.key)
		if err != nil {
			return req, "", err
		}
		*f.dst = strings.TrimSpace(s)
	}
	switch t := data["rebuild"].(type) {
	case nil:
	case bool:
		req.Rebuild = t
	case int:
		if t != 0 && t != 1 {
			return req, "", Faultf(CodeBadRequest, "request_data rebuild must be a boolean, not %d", t)
		}
		req.Rebuild = t == 1
	default:
		return req, "", Faultf(CodeBadRequest, "request_data rebuild must be a boolean, not %s", TypeName(t))
	}
	switch t := data["trunk"].(type) {
	case nil:
	case bool:
		req.Source.Trunk = t
	case int:
		if t != 0 && t != 1 {
			return req, "", Faultf(CodeBadRequest, "request_data trunk must be a boolean, not %d", t)
		}
		req.Source.Trunk = t == 1
	default:
		return req, "", Faultf(CodeBadRequest, "request_data trunk must be a boolean, not %s", TypeName(t))
	}
	if req.Project == "" {
		return req, "", Faultf(CodeBadRequest, "request_data needs a project; list them with list_projects")
	}
	if _, ok := g.Config.Projects[req.Project]; !ok {
		return req, "", Faultf(CodeUnknownProject, "unknown project %q; this manager releases: %s", clip(req.Project), strings.Join(g.projects(), ", "))
	}
	switch workflows.Action(action) {
	case "":
		req.Action = workflows.ActionInstall
	case workflows.ActionBuild, workflows.ActionInstall:
		req.Action = workflows.Action(action)
	default:
		return req, "", Faultf(CodeBadRequest, "request_data action must be build or install, not %q", clip(action))
	}
	if req.Action == workflows.ActionInstall && req.Env == "" {
		return req, "", Faultf(CodeBadRequest, "an install needs env in request_data (one of %s), or use action build", strings.Join(g.envs(), ", "))
	}
	if err := req.Source.Validate(); err != nil {
		return req, "", Faultf(CodeBadRequest, "%v", err)
	}
	if req.From != "" && req.Action != workflows.ActionInstall {
		return req, "", Faultf(CodeBadRequest, "from (install an earlier build) needs action install")
	}
	if pause != "" {
		d, err := time.ParseDuration(pause)
		if err != nil || d < 0 {
			return req, "", Faultf(CodeBadRequest, "request_data pause must be a duration such as 30s or 2m, not %q", clip(pause))
		}
		ro.Pause = d
	}
	if ro != (rollout.Policy{}) {
		if req.Action != workflows.ActionInstall {
			return req, "", Faultf(CodeBadRequest, "strategy, batch, pause and max_failures shape an install: they need action install")
		}
		if err := ro.Validate(); err != nil {
			return req, "", Faultf(CodeBadRequest, "request_data rollout: %v", err)
		}
		req.Rollout = &ro
	}
	// A request id never becomes a workflow id as it is (see
	// transaction.StartSigned), so it cannot name relman's own workflows or
	// another user's transaction; StartSigned checks its form.
	return req, requestID, nil
}

// requestSigner checks, with authentication on, that the policy lets p
// build the project (and install it into the environment) and returns the
// signer that vouches for p to the manager; nil with authentication off.
func (g *Gateway) requestSigner(ctx context.Context, p auth.Principal, req workflows.Request) (*transaction.Signer, error) {
	if !g.Config.Auth.Enabled() {
		return nil, nil
	}
	action, env := auth.ActionBuild, ""
	if req.Action == workflows.ActionInstall {
		action, env = auth.ActionInstall, req.Env
	}
	if err := g.allowed(ctx, p, action, req.Project, env); err != nil {
		return nil, err
	}
	return g.signer(p), nil
}
