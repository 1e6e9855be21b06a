package xmlrpc

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// The reading methods: a transaction, its history, projects, registrations.

// txParam reads ([credentials,] trans_id). The one-argument form of the
// seed has no credentials: it reads as anonymous.
func (g *Gateway) txParam(ctx context.Context, method string, ps []any) (string, auth.Principal, error) {
	id, err := txParamID(method, ps)
	if err != nil {
		return "", auth.Principal{}, err
	}
	var cred any = map[string]any{}
	if len(ps) == 2 {
		cred = ps[0]
	}
	p, err := g.authenticate(ctx, cred)
	return id, p, err
}

func txParamID(method string, ps []any) (string, error) {
	switch len(ps) {
	case 1:
	case 2:
		if _, err := requester(ps[0]); err != nil {
			return "", err
		}
		ps = ps[1:]
	default:
		return "", Faultf(CodeInvalidParams, "%s takes ([credentials,] trans_id); got %d params", method, len(ps))
	}
	id, ok := ps[0].(string)
	if !ok {
		return "", Faultf(CodeInvalidParams, "trans_id must be a string, not %s", TypeName(ps[0]))
	}
	if id == "" {
		return "", Faultf(CodeUnknownTransaction, "trans_id is empty")
	}
	return id, nil
}

// checkTransaction faults unless id is a transaction (a Release or a
// Rollback workflow), so other workflows in the namespace (the registry,
// locks) never pass for transactions.
func (g *Gateway) checkTransaction(ctx context.Context, id string) error {
	desc, err := g.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		var ia *serviceerror.InvalidArgument
		if errors.As(err, &nf) {
			return g.checkRecord(ctx, id)
		}
		if errors.As(err, &ia) {
			return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
		}
		return Faultf(CodeInternal, "could not read transaction %s: %v", clip(id), err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if !transaction.IsTransactionType(info.GetType().GetName()) {
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	if tq := info.GetTaskQueue(); g.Config != nil && tq != g.Config.ManagerQueue {
		// Only relman's code answers on the manager's queue: a workflow
		// elsewhere under the id could answer anything.
		return Faultf(CodeUnknownTransaction, "%q is not a transaction of this manager: it runs on task queue %s, not %s", clip(id), clip(tq), g.Config.ManagerQueue)
	}
	return nil
}

// readFault is the fault for a failed read of transaction id.
func readFault(err error, id string) error {
	switch {
	case errors.Is(err, transaction.ErrUnverified):
		return Faultf(CodeRecordUnverified, "%v", err)
	case errors.Is(err, transaction.ErrNotFound), errors.Is(err, transaction.ErrNotGenuine):
		return Faultf(CodeUnknownTransaction, "no transaction %q of this manager", clip(id))
	}
	return Faultf(CodeInternal, "could not read transaction %s: %v", clip(id), err)
}

// readableTransaction reads ([credentials,] trans_id) and checks the id is
// a transaction the caller may read.
func (g *Gateway) readableTransaction(ctx context.Context, method string, ps []any) (string, error) {
	id, who, err := g.txParam(ctx, method, ps)
	if err != nil {
		return "", err
	}
	if err := g.checkTransaction(ctx, id); err != nil {
		return "", err
	}
	if err := g.mayRead(ctx, who, id); err != nil {
		return "", err
	}
	return id, nil
}

func (g *Gateway) queryTransaction(ctx context.Context, ps []any) (any, error) {
	id, err := g.readableTransaction(ctx, "query_transaction", ps)
	if err != nil {
		return nil, err
	}
	d, err := g.transactions().Get(ctx, id)
	switch {
	case errors.Is(err, transaction.ErrNotYet):
		// Started, its first workflow task not run yet: the seed's STARTED.
		return string(workflows.StatusStarted), nil
	case err != nil:
		return nil, readFault(err, id)
	}
	return string(d.Status), nil
}

func (g *Gateway) queryHistory(ctx context.Context, ps []any) (any, error) {
	id, err := g.readableTransaction(ctx, "query_history", ps)
	if err != nil {
		return nil, err
	}
	steps, err := g.transactions().Timeline(ctx, id)
	if errors.Is(err, transaction.ErrUnverified) {
		return nil, Faultf(CodeRecordUnverified, "%v", err)
	}
	if errors.Is(err, transaction.ErrNotFound) {
		return nil, Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	if err != nil {
		return nil, Faultf(CodeInternal, "could not read the history of %s: %v", clip(id), err)
	}
	out := make([]any, 0, len(steps))
	for _, s := range steps {
		m := map[string]any{"time": s.Time, "event": s.Event, "detail": s.Detail}
		if s.Activity != "" {
			m["activity"] = s.Activity
		}
		if s.Queue != "" {
			m["queue"] = s.Queue
		}
		if s.Worker != "" {
			m["worker"] = s.Worker
		}
		if s.Attempt != 0 {
			m["attempt"] = int(s.Attempt)
		}
		if ms := s.Took.Milliseconds(); ms > 0 {
			m["took_ms"] = ms
		}
		out = append(out, m)
	}
	return out, nil
}

// optionalCredentials reads the (credentials) of the list methods; Python
// clients written for later auth may already send them.
func (g *Gateway) optionalCredentials(ctx context.Context, method string, ps []any) error {
	switch len(ps) {
	case 0:
		_, err := g.authenticate(ctx, map[string]any{})
		return err
	case 1:
		_, err := g.authenticate(ctx, ps[0])
		return err
	}
	return Faultf(CodeInvalidParams, "%s takes (credentials); got %d params", method, len(ps))
}

func (g *Gateway) listProjects(ctx context.Context, ps []any) (any, error) {
	if err := g.optionalCredentials(ctx, "list_projects", ps); err != nil {
		return nil, err
	}
	return g.projects(), nil
}

func (g *Gateway) listRegistrations(ctx context.Context, ps []any) (any, error) {
	if err := g.optionalCredentials(ctx, "list_registrations", ps); err != nil {
		return nil, err
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	ls, err := registry.Registry{Client: g.Client, ID: g.Config.RegistryID, ManagerQueue: g.Config.ManagerQueue}.List(ctx, now())
	if registry.Partial(err) != nil {
		g.log().Warn("xml-rpc list_registrations: part of the registry did not answer", "error", err)
	} else if err != nil {
		return nil, Faultf(CodeInternal, "could not read the registrations: %v", err)
	}
	out := make([]any, 0, len(ls))
	for _, l := range ls {
		projects := slices.Clone(l.Projects)
		slices.Sort(projects)
		targets := map[string]any{}
		for env, ts := range l.Targets {
			ts = slices.Clone(ts)
			slices.Sort(ts)
			targets[env] = ts
		}
		if projects == nil {
			projects = []string{}
		}
		out = append(out, map[string]any{
			"role": string(l.Role), "id": l.ID, "projects": projects, "targets": targets,
			"registered": l.Registered, "renewed": l.Renewed, "expires": l.Expires,
		})
	}
	return out, nil
}
