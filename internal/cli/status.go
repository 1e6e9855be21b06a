package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

var (
	workflowIDUseExisting     = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	workflowIDRejectDuplicate = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
)

// errNotYet: the transaction exists but has not answered yet (its first
// workflow task is still queued).
var errNotYet = errors.New("transaction has not answered yet")

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status TXID",
		Short: "Print a transaction's status word; with --output json, its whole detail",
		Example: `  relman status 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10
  relman status 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := detail(cmd.Context(), c, args[0])
			if errors.Is(err, errNotYet) {
				d = &workflows.Detail{Transaction: args[0], Status: workflows.StatusStarted}
			} else if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(d)
			}
			fmt.Fprintln(a.opts.Stdout, d.Status)
			return nil
		},
	}
}

// detail reads a transaction's detail: from the workflow's query while a
// manager answers, otherwise from its stored result or failure, so a closed
// transaction stays readable with no manager running.
func detail(ctx context.Context, c client.Client, txid string) (*workflows.Detail, error) {
	v, qerr := c.QueryWorkflow(ctx, txid, "", workflows.DetailQuery)
	if qerr == nil {
		var d workflows.Detail
		if err := v.Get(&d); err != nil {
			return nil, err
		}
		if d.Status == "" {
			return nil, errNotYet
		}
		return &d, nil
	}
	desc, err := c.DescribeWorkflowExecution(ctx, txid, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("no transaction %s in this namespace; find ids with `relman list`", txid)
		}
		return nil, fmt.Errorf("read transaction %s: %w", txid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetType().GetName() != workflows.ReleaseWorkflowName {
		return nil, fmt.Errorf("%s is a %s workflow, not a relman transaction", txid, info.GetType().GetName())
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, errNotYet
	}
	var d workflows.Detail
	err = c.GetWorkflow(ctx, txid, "").Get(ctx, &d)
	if err == nil {
		return &d, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		if app.Details(&d) == nil && d.Status != "" {
			return &d, nil
		}
	}
	// A cancelled or terminated transaction: what the search attributes say.
	d = workflows.Detail{Transaction: txid, Reason: err.Error()}
	if sa := info.GetSearchAttributes().GetIndexedFields(); sa != nil {
		var s string
		if p, ok := sa[workflows.SAStatus]; ok && converter.GetDefaultDataConverter().FromPayload(p, &s) == nil {
			d.Status = workflows.Status(s)
		}
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		d.Status = workflows.StatusCancelled
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		if !d.Status.Final(workflows.ActionInstall) {
			d.Status = workflows.StatusCancelled
		}
	}
	if d.Status == "" {
		d.Status = workflows.StatusCancelled
	}
	d.Request.Action = workflows.ActionInstall
	return &d, nil
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
	targets := make([]string, 0, len(d.Artifacts))
	for t := range d.Artifacts {
		targets = append(targets, t)
	}
	sort.Strings(targets)
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

func quoteList(s []string) string { return strings.Join(s, ", ") }
