package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// requestFlags are the flags `relman release` and `relman plan` share to
// make a request: --env, --action and the rollout overrides. A command
// adds its own flags on req.
type requestFlags struct {
	req    workflows.Request
	action string
	r      rollout.Policy
}

// request completes the request from the command line: the project, a
// build or install action (an install names its environment), a valid
// source selector and the rollout flags.
func (f *requestFlags) request(project string) error {
	req := &f.req
	req.Project = project
	req.Action = workflows.Action(f.action)
	if req.Action != workflows.ActionBuild && req.Action != workflows.ActionInstall {
		return usageErr("--action must be build or install, not %q", f.action)
	}
	if req.Action == workflows.ActionInstall && req.Env == "" {
		return usageErr("an install needs --env (for example --env test), or use --action build")
	}
	if err := req.Source.Validate(); err != nil {
		return usageErr("%v", err)
	}
	var err error
	req.Rollout, err = f.rollout()
	return err
}

func (f *requestFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.req.Env, "env", "", "environment to install into (required for install)")
	fs.StringVar(&f.action, "action", "install", "build, or install (build then install)")
	fs.StringVar(&f.r.Strategy, "strategy", "", "rollout strategy: all-at-once or rolling (default: the environment's)")
	fs.StringVar(&f.r.Batch, "batch", "", "hosts per batch of a rolling release: a count (2) or a share (25%)")
	fs.DurationVar(&f.r.Pause, "pause", 0, "pause between batches, such as 30s")
	fs.StringVar(&f.r.MaxFailures, "max-failures", "", "failed hosts tolerated before the release stops: a count or a share (10%)")
}

// rollout is the request's override, nil when no flag was given.
func (f *requestFlags) rollout() (*rollout.Policy, error) {
	if f.r == (rollout.Policy{}) {
		return nil, nil
	}
	if err := f.r.Validate(); err != nil {
		return nil, usageErr("%v", err)
	}
	r := f.r
	return &r, nil
}

func (a *app) planCommand() *cobra.Command {
	var rf requestFlags
	cmd := &cobra.Command{
		Use:   "plan PROJECT --env E",
		Short: "Show what a release would do, without doing it: builder, hosts, batches, approval, lock",
		Example: `  relman plan template --env test
  relman plan template --env prod --strategy rolling --batch 25% --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.request(args[0]); err != nil {
				return err
			}
			req := rf.req
			req.Requester = requester(a.opts.LookupEnv)
			res, builders, err := a.plan(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(struct {
					*workflows.PlanOnlyResult
					Builders []string `json:"builders"`
				}{res, builders})
			}
			printPlan(a.opts.Stdout, res, builders, a.queue)
			return nil
		},
	}
	rf.add(cmd.Flags())
	return cmd
}

func printPlan(w io.Writer, res *workflows.PlanOnlyResult, builders []string, queue string) {
	req, p := res.Request, res.Plan
	fmt.Fprintf(w, "%s of %s", req.Action, req.Project)
	if req.Env != "" {
		fmt.Fprintf(w, " into %s", req.Env)
	}
	fmt.Fprintln(w, " (nothing was done)")
	if len(builders) > 0 {
		fmt.Fprintf(w, "  builder   %s\n", strings.Join(builders, ", "))
	}
	for _, t := range p.Targets {
		if req.Action == workflows.ActionInstall {
			fmt.Fprintf(w, "  target    %s on %s\n", t, strings.Join(p.Hosts[t], ", "))
		} else {
			fmt.Fprintf(w, "  target    %s\n", t)
		}
	}
	if req.Action != workflows.ActionInstall {
		return
	}
	ro := p.Rollout
	strategy := ro.Strategy
	if strategy == "" {
		strategy = rollout.StrategyAllAtOnce
	}
	fmt.Fprintf(w, "  rollout   %s, max failures %d", strategy, ro.MaxFailureCount(countPlanHosts(res)))
	if ro.Pause > 0 && len(res.Batches) > 1 {
		fmt.Fprintf(w, ", pause %s", ro.Pause)
	}
	if ro.Unreachable != "" {
		fmt.Fprintf(w, ", unreachable hosts %s", ro.Unreachable)
	}
	if ro.AutoRollback {
		fmt.Fprint(w, ", auto rollback")
	}
	fmt.Fprintln(w)
	for i, b := range res.Batches {
		fmt.Fprintf(w, "  batch %-3d %s\n", i+1, strings.Join(b, ", "))
	}
	switch {
	case p.Approval.Required && p.Approval.FourEyes:
		fmt.Fprintf(w, "  approval  required, by someone other than the requester, within %s\n", orDur(p.Approval.Timeout, rollout.DefaultApprovalTimeout))
	case p.Approval.Required:
		fmt.Fprintf(w, "  approval  required within %s\n", orDur(p.Approval.Timeout, rollout.DefaultApprovalTimeout))
	default:
		fmt.Fprintln(w, "  approval  none")
	}
	lock := p.Lock
	if lock == "" {
		lock = rollout.LockOff
	}
	fmt.Fprintf(w, "  lock      %s", lock)
	if lock != rollout.LockOff {
		var ids []string
		for _, t := range p.Targets {
			ids = append(ids, workflows.LockID(queue, req.Env, t))
		}
		slices.Sort(ids)
		fmt.Fprintf(w, " (%s)", strings.Join(ids, ", "))
	}
	fmt.Fprintln(w)
	if len(p.Hooks) > 0 {
		var names []string
		for _, h := range p.Hooks {
			names = append(names, h.Name)
		}
		fmt.Fprintf(w, "  webhooks  %s\n", strings.Join(names, ", "))
	} else if len(p.Webhooks) > 0 {
		fmt.Fprintf(w, "  webhooks  %s\n", strings.Join(p.Webhooks, ", "))
	}
}

func countPlanHosts(res *workflows.PlanOnlyResult) int {
	n := 0
	for _, b := range res.Batches {
		n += len(b)
	}
	return n
}

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// plan asks what a release would do, through the manager's API or on
// Temporal, and which builders advertise the project.
func (a *app) plan(ctx context.Context, req workflows.Request) (*workflows.PlanOnlyResult, []string, error) {
	api, err := a.api()
	if err != nil {
		return nil, nil, err
	}
	if api != nil {
		return api.plan(ctx, req)
	}
	sign, c, err := a.signedDial()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	res, err := transaction.Plan(ctx, c, a.queue, req, sign)
	if err != nil {
		return nil, nil, err
	}
	// Which builders advertise the project: the plan only says that one
	// does.
	leases, _ := registry.Registry{Client: c, ID: a.registry, ManagerQueue: a.queue}.List(ctx, time.Now())
	var builders []string
	for _, l := range leases {
		if l.Role == workflows.RoleBuilder && slices.Contains(l.Projects, req.Project) {
			builders = append(builders, l.ID)
		}
	}
	slices.Sort(builders)
	return res, builders, nil
}
