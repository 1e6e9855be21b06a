package workflows

import (
	"time"

	"github.com/relman/relman/internal/auth"
)

// Names of the safe-rollout workflows and activities. They are part of
// stored histories: never rename them.
const (
	// WhereWorkflowName answers which transaction is live on which host.
	WhereWorkflowName = "Where"
	// RollbackWorkflowName is a rollback transaction.
	RollbackWorkflowName = "Rollback"

	// HostsActivity (manager queue) lists the hosts registered for each
	// named target of a project in an environment.
	HostsActivity = "Hosts"
	// WhereActivity (host queue) reads the live install of named targets.
	WhereActivity = "Where"
	// RollbackActivity (host queue) switches one named target back.
	RollbackActivity = "Rollback"

	// WhereIDPrefix starts the workflow id of every Where workflow.
	WhereIDPrefix = "where-"
)

// Application error types of rollouts.
const (
	// ErrRollbackUnsupported: the target's behavior keeps no earlier
	// release to switch back to.
	ErrRollbackUnsupported = "RollbackUnsupported"
	// ErrReleaseNotFound: the release to roll back to is not on the host.
	ErrReleaseNotFound = "ReleaseNotFound"
	// ErrHealthCheck: the target's health check failed after an install.
	ErrHealthCheck = "HealthCheckFailed"
)

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
	// Releases lists the releases kept on the host (release behavior),
	// oldest first.
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

// RollbackInput is the Rollback workflow's argument. Request.Action is
// ActionRollback; Request.From is unused.
type RollbackInput struct {
	Request Request `json:"request"`
	// To is the transaction whose release to switch to; empty means the
	// release before the current one, on every host.
	To string `json:"to,omitempty"`
	// HostTimeout bounds how long a host has to pick up its rollback.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
	// Signature proves who asked, as for a release (SignedPayload).
	Signature *auth.Signature `json:"signature,omitempty"`
}

// RollbackHostInput is the Rollback activity's argument.
type RollbackHostInput struct {
	// Transaction is the rollback's own id: a retry of the same rollback
	// switches to the same release instead of one further back.
	Transaction string `json:"transaction"`
	Project     string `json:"project"`
	Env         string `json:"env"`
	Target      string `json:"target"`
	To          string `json:"to,omitempty"`
}

// RollbackHostResult is what one host did for one named target.
type RollbackHostResult struct {
	Host string `json:"host"`
	// From and To are the transactions current pointed at before and after.
	From    string `json:"from"`
	To      string `json:"to"`
	Path    string `json:"path"`
	Attempt int32  `json:"attempt"`
}
