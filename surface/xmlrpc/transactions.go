package xmlrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// get_transaction and list_transactions: what relman status -o json and
// relman list print, for clients that reach only the gateway.

// listKeys are what list_transactions accepts in its filter.
var listKeys = []string{"env", "limit", "project", "requester", "status"}

// MaxListLimit caps list_transactions' limit.
const MaxListLimit = 1000

func (g *Gateway) registerTransactions(s *Server) {
	s.Register("get_transaction", Method{
		Func: g.getTransaction,
		Help: `get_transaction([credentials,] trans_id[, options]) => {transaction, request, status, ...}.
The transaction's whole detail, as relman status --output json prints it:
request, status, reason, builder, commit, artifacts, steps, installs,
rollout, waiting, approval, cancelled, events, started, ended, with the
same keys; times are RFC 3339 strings. A transaction started but not yet
run answers {transaction, status: STARTED}. options (with credentials):
{installs: false} leaves a large transaction's installs as their count by
state (install_pages), as a client polling it wants. Faults: 2 unknown
transaction, 3 credentials rejected, 6 not allowed to read it, 10 its
record does not verify.`,
		Signatures: [][]string{{"struct", "string"}, {"struct", "struct", "string"}, {"struct", "struct", "string", "struct"}},
	})
	s.Register("list_transactions", Method{
		Func: g.listTransactions,
		Help: `list_transactions(credentials[, filter]) => [{transaction, project, env, status, requester, started, closed}].
This manager's transactions, newest first, as relman list shows them.
filter keys, all optional: project, env, status (a status word), requester,
limit (default 20, at most 1000). Transactions the user may not read (policy
action read) are left out. Times are RFC 3339 strings. Faults: 3 credentials
rejected, 4 bad filter.`,
		Signatures: [][]string{{"array", "struct"}, {"array", "struct", "struct"}},
	})
}

func (g *Gateway) getTransaction(ctx context.Context, ps []any) (any, error) {
	installs := true
	if len(ps) == 3 {
		var err error
		if installs, err = getOptions(ps[2]); err != nil {
			return nil, err
		}
		ps = ps[:2]
	}
	id, who, err := g.txParam(ctx, "get_transaction", ps)
	if err != nil {
		return nil, err
	}
	if err := g.checkTransaction(ctx, id); err != nil {
		return nil, err
	}
	// One read serves the policy check and the answer: clients poll this.
	var d *workflows.Detail
	if !installs {
		d, err = transaction.Poll(ctx, g.Client, id)
	}
	if installs || errors.Is(err, transaction.ErrNotFound) {
		d, err = g.transactions().Get(ctx, id)
	}
	switch {
	case errors.Is(err, transaction.ErrNotYet):
		return plainData(&workflows.Detail{Transaction: id, Status: workflows.StatusStarted})
	case err != nil:
		return nil, readFault(err, id)
	}
	if err := g.mayReadDetail(ctx, who, d); err != nil {
		return nil, err
	}
	return plainData(d)
}

func (g *Gateway) listTransactions(ctx context.Context, ps []any) (any, error) {
	if len(ps) > 2 {
		return nil, Faultf(CodeInvalidParams, "list_transactions takes (credentials[, filter]); got %d params", len(ps))
	}
	var cred any = map[string]any{}
	if len(ps) > 0 {
		cred = ps[0]
	}
	p, err := g.authenticate(ctx, cred)
	if err != nil {
		return nil, err
	}
	f := transaction.Filter{Limit: 20, Manager: g.Config.ManagerQueue}
	if len(ps) == 2 {
		if f, err = listFilter(ps[1], f); err != nil {
			return nil, err
		}
	}
	rows, err := g.transactions().List(ctx, f)
	if errors.Is(err, transaction.ErrBadFilter) {
		return nil, Faultf(CodeBadRequest, "%v", err)
	}
	if err != nil {
		return nil, Faultf(CodeInternal, "could not list transactions: %v", err)
	}
	if g.Config.Auth.Enabled() {
		// Each (project, env) asked of the policy once.
		may := map[[2]string]bool{}
		kept := rows[:0]
		for _, r := range rows {
			k := [2]string{r.Project, r.Env}
			ok, seen := may[k]
			if !seen {
				err := g.allowed(ctx, p, auth.ActionRead, r.Project, r.Env)
				var fault *Fault
				if err != nil && (!errors.As(err, &fault) || fault.Code != CodeForbidden) {
					return nil, err
				}
				ok = err == nil
				may[k] = ok
			}
			if ok {
				kept = append(kept, r)
			}
		}
		rows = kept
	}
	return plainData(rows)
}

// getOptions reads get_transaction's options: whether to read a large
// transaction's installs.
func getOptions(v any) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return true, Faultf(CodeInvalidParams, "get_transaction options must be a struct, not %s", TypeName(v))
	}
	installs := true
	for k, v := range m {
		if k != "installs" {
			return true, Faultf(CodeBadRequest, "get_transaction options have unknown key %q; it accepts: installs", clip(k))
		}
		b, ok := v.(bool)
		if !ok {
			return true, Faultf(CodeBadRequest, "get_transaction options installs must be a boolean, not %s", TypeName(v))
		}
		installs = b
	}
	return installs, nil
}

// listFilter reads list_transactions' filter struct.
func listFilter(v any, f transaction.Filter) (transaction.Filter, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return f, Faultf(CodeInvalidParams, "filter must be a struct, not %s", TypeName(v))
	}
	if err := refuseUnknown("filter", "list_transactions", m, listKeys); err != nil {
		return f, err
	}
	if v := m["limit"]; v != nil {
		n, ok := v.(int)
		if !ok || n <= 0 || n > MaxListLimit {
			return f, Faultf(CodeBadRequest, "filter limit must be a whole number from 1 to %d", MaxListLimit)
		}
		f.Limit = n
	}
	for _, s := range []struct {
		key string
		dst *string
	}{{"project", &f.Project}, {"env", &f.Env}, {"status", &f.Status}, {"requester", &f.Requester}} {
		if m[s.key] == nil {
			continue
		}
		v, err := stringMember("filter", m, s.key)
		if err != nil {
			return f, err
		}
		*s.dst = v
	}
	return f, nil
}

// plainData turns v into the plain values both encodings carry, with the
// keys of its JSON form (what the CLI prints with --output json): structs
// become maps, times RFC 3339 strings, whole numbers int.
func plainData(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Faultf(CodeInternalError, "the answer could not be encoded: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, Faultf(CodeInternalError, "the answer could not be encoded: %v", err)
	}
	return fromJSON(out, 0)
}
