package xmlrpc

import (
	"context"
	"errors"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// CodeRecordUnverified: the transaction is past Temporal's retention and
// its closed-transaction record does not verify (changed after the manager
// wrote it); it is not shown.
const CodeRecordUnverified = 8

// checkRecord faults unless a transaction Temporal no longer has left a
// closed-transaction record of a Release, the one kind of transaction the
// seed's methods read; a record that does not verify faults as such.
func (g *Gateway) checkRecord(ctx context.Context, id string) error {
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
	case rec.Workflow != workflows.ReleaseWorkflowName:
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	return nil
}
