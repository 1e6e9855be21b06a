package workflows

import (
	"errors"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// whereHostTimeout is config.DefaultWhereHostTimeout.
const whereHostTimeout = config.DefaultWhereHostTimeout

// WhereInput is the Where workflow's argument.
type WhereInput struct {
	Project string `json:"project"`
	Env     string `json:"env"`
}

// WhereHostInput is the Where activity's argument: the named targets to
// read on one host.
type WhereHostInput struct {
	Project string   `json:"project"`
	Env     string   `json:"env"`
	Targets []string `json:"targets"`
}

// LiveInstall is what is live for one named target on one host.
type LiveInstall struct {
	Target   string `json:"target"`
	Behavior string `json:"behavior,omitempty"`
	// Transaction is empty when nothing relman installed is there.
	Transaction string    `json:"transaction,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Path        string    `json:"path,omitempty"`
	InstalledAt time.Time `json:"installed_at,omitempty"`
	// Releases lists the releases kept on the host (behaviors that keep
	// them), oldest first.
	Releases []string `json:"releases,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// WhereResult is host -> named target -> live install, plus the hosts that
// did not answer.
type WhereResult struct {
	Project string                            `json:"project"`
	Env     string                            `json:"env"`
	Hosts   map[string]map[string]LiveInstall `json:"hosts"`
	Errors  map[string]string                 `json:"errors,omitempty"` // host -> why it did not answer
}

// HostNames are the hosts that answered and those that did not, sorted,
// each once.
func (r *WhereResult) HostNames() []string {
	hosts := slices.Collect(maps.Keys(r.Hosts))
	for h := range r.Errors {
		if _, ok := r.Hosts[h]; !ok {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// Where answers which transaction is live for each named target of a
// project on every host registered for the environment. It is short-lived
// (workflow id "where-..."): the CLI started it and waited for its result.
// A host that does not answer is reported in Errors, not as a failure.
//
// `relman where` asks the manager's Desk now (desk.go); Where stays
// registered so the executions it ran still replay.
func Where(ctx workflow.Context, in WhereInput) (WhereResult, error) {
	return where(ctx, in, func(ctx workflow.Context, opts workflow.ActivityOptions, calls []hostCall, done func(int, hostResult)) {
		fanOut(ctx, "where", opts, calls, done)
	})
}

// where asks every host of the environment what is live, sending the
// calls out through fan (fanOut, or the Desk's fan-out that keeps its
// pending activities in bounds).
func where(ctx workflow.Context, in WhereInput, fan func(workflow.Context, workflow.ActivityOptions, []hostCall, func(int, hostResult))) (WhereResult, error) {
	res := WhereResult{Project: in.Project, Env: in.Env, Hosts: map[string]map[string]LiveInstall{}}
	hosts, err := registeredHosts(ctx, in.Project, in.Env)
	if err != nil {
		return res, err
	}
	byHost := hosts.ByHost()
	names := sortedKeys(byHost)
	calls := make([]hostCall, len(names))
	for i, h := range names {
		calls[i] = hostCall{host: h, activity: WhereActivity, input: WhereHostInput{Project: in.Project, Env: in.Env, Targets: byHost[h]}}
	}
	opts := workflow.ActivityOptions{
		ScheduleToStartTimeout: whereHostTimeout,
		StartToCloseTimeout:    whereHostTimeout,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
	}
	fan(ctx, opts, calls, func(i int, f hostResult) {
		h := names[i]
		var live map[string]LiveInstall
		if err := f.Get(ctx, &live); err != nil {
			if res.Errors == nil {
				res.Errors = map[string]string{}
			}
			res.Errors[h] = hostError(err, h)
			return
		}
		res.Hosts[h] = live
	})
	return res, nil
}

// HostsInput is the Hosts activity's argument.
type HostsInput struct {
	Project string `json:"project"`
	Env     string `json:"env"`
}

// HostsResult is every named target of a project and the hosts registered
// for it in the environment.
type HostsResult struct {
	Targets []string            `json:"targets"`
	Hosts   map[string][]string `json:"hosts"` // target -> hosts, sorted
	// HostTimeout bounds how long a host has to pick up its activity.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
	// The environment's rules a rollback obeys as a release does, and
	// whether the manager authenticates (approval decisions are then
	// signed).
	Approval    Approval      `json:"approval"`
	Lock        string        `json:"lock,omitempty"`
	LockTimeout time.Duration `json:"lock_timeout,omitempty"`
	AuthOn      bool          `json:"auth_on,omitempty"`
	// Unanswered: as Plan.Unanswered.
	Unanswered []string `json:"unanswered,omitempty"`
}

// ByHost turns target -> hosts into host -> targets, both sorted.
func (h HostsResult) ByHost() map[string][]string {
	out := map[string][]string{}
	for _, t := range sortedKeys(h.Hosts) {
		for _, host := range h.Hosts[t] {
			out[host] = append(out[host], t)
		}
	}
	return out
}

// registeredHosts runs the manager's Hosts activity.
func registeredHosts(ctx workflow.Context, project, env string) (HostsResult, error) {
	ctx = withManagerActivity(ctx)
	var res HostsResult
	err := workflow.ExecuteActivity(ctx, HostsActivity, HostsInput{Project: project, Env: env}).Get(ctx, &res)
	return res, err
}

// hostError says in one sentence why a host's where failed.
func hostError(err error, host string) string {
	if isUnreachable(err) {
		return "host " + host + " unreachable: it did not pick up the request in time"
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "host " + host + " timed out (" + te.TimeoutType().String() + ")"
	}
	return err.Error()
}
