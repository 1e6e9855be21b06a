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
	p, id, reason, err := g.actOn(ctx, "cancel_transaction", "reason", "cancels", ps)
	if err != nil {
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
		// actOn found the transaction, so it has ended since.
		return nil, Faultf(CodeCancelRefused, "transaction %q has ended; there is nothing to cancel", clip(id))
	case err != nil:
		return nil, Faultf(CodeInternal, "could not cancel %s: %v", clip(id), err)
	}
	g.log().Info("xml-rpc cancel_transaction", "transaction", id, "by", p.ID())
	return msg, nil
}
