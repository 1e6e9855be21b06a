package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/relman/relman/workflows"
)

// ListedTransaction is one row of `relman list`.
type ListedTransaction struct {
	Transaction string    `json:"transaction"`
	Project     string    `json:"project"`
	Env         string    `json:"env,omitempty"`
	Status      string    `json:"status"`
	Requester   string    `json:"requester,omitempty"`
	Started     time.Time `json:"started"`
	Closed      time.Time `json:"closed,omitempty"`
}

func (a *app) listCommand() *cobra.Command {
	var project, env, status, requester string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List transactions, newest first, filtered by project, environment, status or requester",
		Example: `  relman list
  relman list --project template --env test --status INSTALL_FAILED --limit 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return usageErr("--limit must be positive")
			}
			q := []string{fmt.Sprintf("WorkflowType = '%s'", workflows.ReleaseWorkflowName)}
			for _, f := range []struct{ attr, val, flag string }{
				{workflows.SAProject, project, "project"},
				{workflows.SAEnv, env, "env"},
				{workflows.SAStatus, strings.ToUpper(status), "status"},
				{workflows.SARequester, requester, "requester"},
			} {
				if f.val == "" {
					continue
				}
				if strings.ContainsAny(f.val, "'\"\\") {
					return usageErr("--%s must not contain quotes or backslashes", f.flag)
				}
				q = append(q, fmt.Sprintf("%s = '%s'", f.attr, f.val))
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var rows []ListedTransaction
			var token []byte
			dc := converter.GetDefaultDataConverter()
			for len(rows) < limit {
				resp, err := c.ListWorkflow(cmd.Context(), &workflowservice.ListWorkflowExecutionsRequest{
					Query: strings.Join(q, " AND "), PageSize: int32(min(limit, 1000)), NextPageToken: token,
				})
				if err != nil {
					return fmt.Errorf("list transactions: %w", err)
				}
				for _, e := range resp.GetExecutions() {
					r := ListedTransaction{Transaction: e.GetExecution().GetWorkflowId(), Started: e.GetStartTime().AsTime()}
					if e.GetCloseTime() != nil {
						r.Closed = e.GetCloseTime().AsTime()
					}
					f := e.GetSearchAttributes().GetIndexedFields()
					for attr, dst := range map[string]*string{workflows.SAProject: &r.Project, workflows.SAEnv: &r.Env, workflows.SAStatus: &r.Status, workflows.SARequester: &r.Requester} {
						if p, ok := f[attr]; ok {
							_ = dc.FromPayload(p, dst)
						}
					}
					rows = append(rows, r)
					if len(rows) == limit {
						break
					}
				}
				token = resp.GetNextPageToken()
				if len(token) == 0 {
					break
				}
			}
			if a.output == "json" {
				if rows == nil {
					rows = []ListedTransaction{}
				}
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
	f := cmd.Flags()
	f.StringVar(&project, "project", "", "only this project")
	f.StringVar(&env, "env", "", "only this environment")
	f.StringVar(&status, "status", "", "only this status word (STARTED, BUILD_COMPLETED, INSTALL_COMPLETED, REJECTED, BUILD_FAILED, INSTALL_FAILED, CANCELLED)")
	f.StringVar(&requester, "requester", "", "only requests by this user")
	f.IntVar(&limit, "limit", 20, "at most this many transactions")
	return cmd
}
