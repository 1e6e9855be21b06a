package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func (a *app) statusCommand() *cobra.Command {
	return transactionCommand(a, "status", "Print a transaction's status word; with --output json, its whole detail",
		a.getTransaction, writeStatus)
}

// getTransaction reads a transaction's detail, through the manager's API
// or from Temporal; one started but not run yet is STARTED.
func (a *app) getTransaction(ctx context.Context, txid string) (*workflows.Detail, error) {
	return apiOrTemporal(a, func(api *apiClient) (*workflows.Detail, error) {
		return api.get(ctx, txid)
	}, func(c client.Client) (*workflows.Detail, error) {
		d, err := a.transactions(c).Get(ctx, txid)
		if errors.Is(err, transaction.ErrNotYet) {
			return &workflows.Detail{Transaction: txid, Status: workflows.StatusStarted}, nil
		}
		return d, err
	})
}

// writeStatus writes the status word alone, as the seed's
// query_transaction answers it, so scripts can compare it.
func writeStatus(w io.Writer, d *workflows.Detail) error {
	_, err := fmt.Fprintln(w, d.Status)
	return err
}

// printSummary writes the end of a release for people.
func printSummary(w io.Writer, d *workflows.Detail) {
	fmt.Fprintf(w, "%s %s", d.Transaction, d.Status)
	if d.Reason != "" {
		fmt.Fprintf(w, ": %s", d.Reason)
	}
	fmt.Fprintln(w)
	if d.Commit != "" {
		fmt.Fprintf(w, "  commit   %s (built by %s)\n", d.Commit, d.Builder)
	}
	targets := slices.Sorted(maps.Keys(d.Artifacts))
	for _, t := range targets {
		ar := d.Artifacts[t]
		fmt.Fprintf(w, "  artifact %s  sha256:%s  %d bytes\n", t, ar.SHA256, ar.Size)
	}
	if len(d.Installs) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tTARGET\tSTATE\tATTEMPTS\tTOOK\tPATH / ERROR")
		for _, in := range d.Installs {
			took := ""
			if !in.Ended.IsZero() && !in.Started.IsZero() {
				took = in.Ended.Sub(in.Started).Round(time.Millisecond).String()
			}
			where := in.Path
			if in.Error != "" {
				where = in.Error
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", in.Host, in.Target, in.State, in.Attempts, took, where)
		}
		tw.Flush()
	}
}
