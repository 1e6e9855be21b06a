package xmlrpc

import (
	"context"
	"errors"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// CodeCancelRefused: a cancel the transaction refused: it has ended, or
// the policy does not let the user cancel it.
const CodeCancelRefused = 9

func (g *Gateway) registerCancel(s *Server) {
	s.Register("cancel_transaction", Method{
		Func: g.cancelTransaction,
		Help: `cancel_transaction(credentials, trans_id[, reason]) => message.
Cancels a running transaction as the user of the credentials, if the policy
lets them cancel (action cancel) in its project and environment; who
cancelled is recorded in its detail and history. Build steps are killed,
installs stop before their swap; it ends CANCELLED shortly after.
Faults: 2 unknown transaction, 3 credentials rejected, 9 refused (it has
ended, or the policy does not allow it).`,
		Signatures: [][]string{{"string", "struct", "string"}, {"string", "struct", "string", "string"}},
	})
}

func (g *Gateway) cancelTransaction(ctx context.Context, ps []any) (any, error) {
	if len(ps) != 2 && len(ps) != 3 {
		return nil, Faultf(CodeInvalidParams, "cancel_transaction takes (credentials, trans_id[, reason]); got %d params", len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return nil, err
	}
	id, ok := ps[1].(string)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "trans_id must be a string, not %s", TypeName(ps[1]))
	}
	reason := ""
	if len(ps) == 3 {
		if reason, ok = ps[2].(string); !ok || len(reason) > 1024 {
			return nil, Faultf(CodeInvalidParams, "reason must be a string of at most 1024 characters")
		}
	}
	if p.Name == "" {
		return nil, Faultf(CodeCredentialsRejected, "cancel_transaction needs a username in credentials: who cancels is recorded")
	}
	if err := g.checkTransaction(ctx, id); err != nil {
		return nil, err
	}
	r := workflows.CancelRequest{By: p.ID(), Reason: reason}
	if g.Config.Auth.Enabled() {
		if sign := g.signer(p); sign != nil {
			r.Signature = sign.Sign(workflows.CancelPayload(id, r))
		}
	}
	msg, err := transaction.Cancel(ctx, g.Client, id, r)
	switch {
	case errors.Is(err, transaction.ErrCancelRefused):
		return nil, Faultf(CodeCancelRefused, "%v", err)
	case errors.Is(err, transaction.ErrNotFound):
		return nil, Faultf(CodeUnknownTransaction, "transaction %q is not running", clip(id))
	case err != nil:
		return nil, Faultf(CodeInternal, "could not cancel %s: %v", clip(id), err)
	}
	g.log().Info("xml-rpc cancel_transaction", "transaction", id, "by", p.ID())
	return msg, nil
}
