package xmlrpc

import (
	"context"
	"errors"

	"github.com/relman/relman/internal/transaction"
)

// CodeRecordUnverified: the transaction is past Temporal's retention and
// its closed-transaction record does not verify (changed after the manager
// wrote it); it is not shown.
const CodeRecordUnverified = 10

// checkRecord faults unless a transaction Temporal no longer has left what
// the reads fall back to, of a transaction (a Release or a Rollback, as
// checkTransaction allows while Temporal has it): its archived history (a
// namespace that archives), or its closed-transaction record; a record that
// does not verify faults as such.
func (g *Gateway) checkRecord(ctx context.Context, id string) error {
	if run := transaction.ArchivedRun(ctx, g.Client, id); run != "" {
		if _, err := transaction.FromHistory(ctx, g.Client, id, run); err == nil {
			return nil
		}
	}
	if g.Records == nil {
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	rec, err := g.Records.Record(ctx, id)
	switch {
	case errors.Is(err, transaction.ErrUnverified):
		return Faultf(CodeRecordUnverified, "%v", err)
	case errors.Is(err, transaction.ErrNoRecord):
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	case err != nil:
		return Faultf(CodeInternal, "could not read the closed-transaction record of %s: %v", clip(id), err)
	case !transaction.IsTransactionType(rec.Workflow):
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	return nil
}
