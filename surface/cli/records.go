package cli

import (
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/transaction"
)

// transactions reads transactions for status, history, list and install
// --from: from Temporal, then, for one Temporal no longer has, from the
// manager's closed-transaction records. The CLI asks the manager on
// --manager-queue for them (the Records workflow) rather than reading the
// store itself: the manager holds the store's credentials and the key
// that verifies them. What a person should know about an answer goes to
// stderr, so stdout stays what scripts read.
func (a *app) transactions(c client.Client) transaction.Reader {
	return transaction.Reader{
		Client:    c,
		Namespace: a.temporalSettings(config.Temporal{}).Namespace,
		Records:   transaction.ManagerRecords{Client: c, Queue: a.queue},
		Notice:    func(s string) { fmt.Fprintln(a.opts.Stderr, "Note: "+s) },
		Queue:     a.queue,
	}
}
