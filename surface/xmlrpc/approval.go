package xmlrpc

import (
	"context"
	"errors"
	"time"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// CodeDecisionRefused: an approve or reject the transaction refused: it is
// not awaiting approval, or four eyes forbid the requester approving.
const CodeDecisionRefused = 7

func (g *Gateway) registerApproval(s *Server) {
	s.Register("approve_transaction", Method{
		Func: func(ctx context.Context, ps []any) (any, error) {
			return g.decide(ctx, "approve_transaction", true, ps)
		},
		Help: `approve_transaction(credentials, trans_id[, comment]) => message.
Approves a transaction in status AWAITING_APPROVAL, as the user of the
credentials; it goes on to install. Faults: 2 unknown transaction,
3 credentials rejected, 7 refused (not awaiting approval, or the requester
approving their own release where four eyes are required).`,
		Signatures: [][]string{{"string", "struct", "string"}, {"string", "struct", "string", "string"}},
	})
	s.Register("reject_transaction", Method{
		Func: func(ctx context.Context, ps []any) (any, error) {
			return g.decide(ctx, "reject_transaction", false, ps)
		},
		Help: `reject_transaction(credentials, trans_id[, reason]) => message.
Rejects a transaction in status AWAITING_APPROVAL, as the user of the
credentials; it ends REJECTED. Faults: 2 unknown transaction, 3 credentials
rejected, 7 refused (not awaiting approval).`,
		Signatures: [][]string{{"string", "struct", "string"}, {"string", "struct", "string", "string"}},
	})
}

// actOn reads (credentials, trans_id[, text]) of a method that acts on a
// running transaction as a named user (approve, reject, cancel): who, the
// transaction, and the text (what, at most 1024 characters), after
// checking the id is a transaction.
func (g *Gateway) actOn(ctx context.Context, method, what, does string, ps []any) (auth.Principal, string, string, error) {
	if len(ps) != 2 && len(ps) != 3 {
		return auth.Principal{}, "", "", Faultf(CodeInvalidParams, "%s takes (credentials, trans_id[, %s]); got %d params", method, what, len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return auth.Principal{}, "", "", err
	}
	id, ok := ps[1].(string)
	if !ok {
		return auth.Principal{}, "", "", Faultf(CodeInvalidParams, "trans_id must be a string, not %s", TypeName(ps[1]))
	}
	text := ""
	if len(ps) == 3 {
		if text, ok = ps[2].(string); !ok || len(text) > 1024 {
			return auth.Principal{}, "", "", Faultf(CodeInvalidParams, "%s must be a string of at most 1024 characters", what)
		}
	}
	if p.Name == "" {
		return auth.Principal{}, "", "", Faultf(CodeCredentialsRejected, "%s needs a username in credentials: who %s is recorded", method, does)
	}
	if err := g.checkTransaction(ctx, id); err != nil {
		return auth.Principal{}, "", "", err
	}
	return p, id, text, nil
}

func (g *Gateway) decide(ctx context.Context, method string, approve bool, ps []any) (any, error) {
	p, id, comment, err := g.actOn(ctx, method, "comment", "decides", ps)
	if err != nil {
		return nil, err
	}
	d := workflows.ApprovalDecision{By: p.ID(), Comment: comment}
	if g.Config.Auth.Enabled() && p.Realm != "" {
		s := auth.SignAsGateway(g.Secret, p, workflows.DecisionPayload(id, approve, d), time.Now())
		d.Signature = &s
	}
	msg, err := transaction.Decide(ctx, g.Client, id, approve, d)
	switch {
	case errors.Is(err, transaction.ErrDecisionRefused):
		return nil, Faultf(CodeDecisionRefused, "%v", err)
	case errors.Is(err, transaction.ErrNotFound):
		return nil, Faultf(CodeUnknownTransaction, "transaction %q is not running", clip(id))
	case err != nil:
		return nil, Faultf(CodeInternal, "could not decide on %s: %v", clip(id), err)
	}
	g.log().Info("xml-rpc "+method, "transaction", id, "by", p.ID())
	return msg, nil
}
