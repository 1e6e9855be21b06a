package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// whereHostTimeout bounds how long a where waits for a host: a person is
// waiting for the answer, and a silent host is itself the answer.
const whereHostTimeout = 30 * time.Second

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

// Where answers which transaction is live for each named target of a
// project on every host registered for the environment. It is short-lived
// (workflow id "where-..."): the CLI starts it and waits for its result. A
// host that does not answer is reported in Errors, not as a failure.
func Where(ctx workflow.Context, in WhereInput) (WhereResult, error) {
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
	fanOut(ctx, "where", opts, calls, func(i int, f hostResult) {
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
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{ErrRejected},
		},
	})
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
