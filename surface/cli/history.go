package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
)

func (a *app) historyCommand() *cobra.Command {
	return transactionCommand(a, "history", "Print a transaction's timeline from its event history: what ran where, attempts, durations, errors",
		a.timeline, writeHistory)
}

// timeline reads a transaction's timeline, through the manager's API
// (query_history, durations to the millisecond) or from Temporal.
func (a *app) timeline(ctx context.Context, txid string) ([]transaction.Step, error) {
	return apiOrTemporal(a, func(api *apiClient) ([]transaction.Step, error) {
		return api.history(ctx, txid)
	}, func(c client.Client) ([]transaction.Step, error) {
		return a.transactions(c).Timeline(ctx, txid)
	})
}

// writeHistory writes a transaction's timeline as a table, times in local
// time and seconds since the first step.
func writeHistory(w io.Writer, steps []transaction.Step) error {
	if len(steps) == 0 {
		return nil
	}
	t0 := steps[0].Time
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\t+SECONDS\tEVENT\tACTIVITY\tQUEUE\tWORKER\tATTEMPT\tTOOK\tDETAIL")
	for _, s := range steps {
		att, took := "", ""
		if s.Attempt > 0 {
			att = fmt.Sprint(s.Attempt)
		}
		if s.Took > 0 {
			took = s.Took.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Time.Local().Format("15:04:05.000"),
			s.Time.Sub(t0).Seconds(), s.Event, s.Activity, s.Queue, s.Worker, att, took, s.Detail)
	}
	return tw.Flush()
}
