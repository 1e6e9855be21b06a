package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
)

func (a *app) listCommand() *cobra.Command {
	var f transaction.Filter
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the manager's transactions (--manager-queue), newest first, filtered by project, environment, status or requester",
		Long: `list lists the transactions of the manager on --manager-queue (the search
attribute RelmanManager), or of every manager with --all-managers.
Transactions started before relman recorded their manager carry none: only
--all-managers lists them.`,
		Example: `  relman list
  relman list --project template --env test --status INSTALL_FAILED --limit 20
  relman list --manager-queue team-b
  relman list --all-managers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit <= 0 {
				return usageErr("--limit must be positive")
			}
			if !all {
				f.Manager = a.queue
			}
			rows, err := a.list(cmd.Context(), f, all)
			if errors.Is(err, transaction.ErrBadFilter) {
				return usageErr("%v", err)
			}
			if err != nil {
				return err
			}
			var fromRecords []string
			for _, r := range rows {
				if r.From == transaction.FromRecord {
					fromRecords = append(fromRecords, r.Transaction)
				}
			}
			if len(fromRecords) > 0 {
				fmt.Fprintf(a.opts.Stderr, "Note: Temporal no longer has %s (past the namespace's retention, or deleted); listed from the manager's closed-transaction records\n",
					strings.Join(fromRecords, ", "))
			}
			if a.output == "json" {
				return a.printJSON(rows)
			}
			tw := tabwriter.NewWriter(a.opts.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TRANSACTION\tPROJECT\tENV\tSTATUS\tREQUESTER\tSTARTED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Transaction, r.Project, r.Env, r.Status, r.Requester, r.Started.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Project, "project", "", "only this project")
	fl.StringVar(&f.Env, "env", "", "only this environment")
	fl.StringVar(&f.Status, "status", "", "only this status word (STARTED, BUILD_COMPLETED, INSTALL_COMPLETED, REJECTED, BUILD_FAILED, INSTALL_FAILED, CANCELLED)")
	fl.StringVar(&f.Requester, "requester", "", "only requests by this user")
	fl.IntVar(&f.Limit, "limit", 20, "at most this many transactions")
	fl.BoolVar(&all, "all-managers", false, "list every manager's transactions, not only those of --manager-queue")
	return cmd
}

// list lists transactions, through the manager's API (its own manager's,
// those the user may read) or from Temporal.
func (a *app) list(ctx context.Context, f transaction.Filter, all bool) ([]transaction.Listed, error) {
	return apiOrTemporal(a, func(api *apiClient) ([]transaction.Listed, error) {
		if all {
			return nil, usageErr("--all-managers is not available over the manager's API (--manager-url): a manager lists its own transactions")
		}
		return api.list(ctx, f)
	}, func(c client.Client) ([]transaction.Listed, error) {
		return a.transactions(c).List(ctx, f)
	})
}
