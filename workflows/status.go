// Package workflows holds relman's Temporal workflows: Release (the durable
// transaction of one request) and Rollback, the Registry of builders and
// installer hosts, the Lock of each (environment, named target), and the
// short helpers behind `relman plan` and `relman where`. Workflows are
// deterministic; all I/O lives in activities.
//
// Files hold one concept each: names.go the registered names, status.go
// what a transaction reports, release.go the Release workflow, install.go its
// install step and fanout.go the one way work goes out to hosts, approval.go,
// lock.go and webhook.go the steps an environment may ask for.
package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
)

// Status is the word a transaction reports, the seed's where the seed had one.
type Status string

const (
	StatusStarted          Status = "STARTED"
	StatusBuildCompleted   Status = "BUILD_COMPLETED"
	StatusInstallCompleted Status = "INSTALL_COMPLETED"
	StatusRejected         Status = "REJECTED"
	StatusBuildFailed      Status = "BUILD_FAILED"
	StatusInstallFailed    Status = "INSTALL_FAILED"
	StatusCancelled        Status = "CANCELLED"
	// A rollback transaction's end: every host switched back, or not.
	StatusRollbackCompleted Status = "ROLLBACK_COMPLETED"
	StatusRollbackFailed    Status = "ROLLBACK_FAILED"
	// A release that waits: for the lock of its environment's named
	// targets, or for a person to approve it. Neither is final.
	StatusWaiting          Status = "WAITING"
	StatusAwaitingApproval Status = "AWAITING_APPROVAL"
	// StatusSuperseded ends a release that waited for a lock in an
	// environment whose lock is supersede when a newer release came.
	StatusSuperseded Status = "SUPERSEDED"
)

// Final reports whether no further status can follow s for the given action.
func (s Status) Final(action Action) bool {
	switch s {
	case StatusInstallCompleted, StatusRejected, StatusBuildFailed, StatusInstallFailed, StatusCancelled,
		StatusRollbackCompleted, StatusRollbackFailed, StatusSuperseded:
		return true
	case StatusBuildCompleted:
		return action == ActionBuild
	}
	return false
}

// Succeeded reports whether s is the success status for action.
func (s Status) Succeeded(action Action) bool {
	switch action {
	case ActionBuild:
		return s == StatusBuildCompleted
	case ActionRollback:
		return s == StatusRollbackCompleted
	}
	return s == StatusInstallCompleted
}

// Action is what a request asks for.
type Action string

const (
	ActionBuild   Action = "build"
	ActionInstall Action = "install"
	// ActionRollback is a Rollback transaction's action: switch every host
	// back to an earlier release.
	ActionRollback Action = "rollback"
)

// Selector says which source to build. At most one field is set; none means
// trunk (the default branch).
type Selector struct {
	Trunk    bool   `json:"trunk,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Revision string `json:"revision,omitempty"`
	URL      string `json:"url,omitempty"`
}

// String names the selector for people.
func (s Selector) String() string {
	switch {
	case s.Branch != "":
		return "branch " + s.Branch
	case s.Tag != "":
		return "tag " + s.Tag
	case s.Revision != "":
		return "revision " + s.Revision
	case s.URL != "":
		return "url " + s.URL
	}
	return "trunk"
}

// Validate reports a selector with more than one field set.
func (s Selector) Validate() error {
	n := 0
	for _, v := range []string{s.Branch, s.Tag, s.Revision, s.URL} {
		if v != "" {
			n++
		}
	}
	if s.Trunk && n > 0 || n > 1 {
		return fmt.Errorf("choose one source selector of trunk, branch, tag, revision or url, not several")
	}
	return nil
}

// Request is one release request, the seed's request_data.
type Request struct {
	Project   string   `json:"project"`
	Action    Action   `json:"action"`
	Env       string   `json:"env,omitempty"`
	Source    Selector `json:"source"`
	Requester string   `json:"requester,omitempty"`
	// From installs the build of an earlier transaction instead of
	// building again (action install only).
	From string `json:"from,omitempty"`
	// Rebuild builds even when a build of the same commit and build config
	// is in the artifact store already.
	Rebuild bool `json:"rebuild,omitempty"`
	// Rollout overrides the fields it sets of the environment's rollout.
	Rollout *rollout.Policy `json:"rollout,omitempty"`
	// RequestID is the requester's idempotency key; the transaction id is
	// derived from it (RequestTransactionID), never the key itself.
	RequestID string `json:"request_id,omitempty"`
}

// InstallState is the state of one (host, target) install.
type InstallState string

const (
	InstallPending    InstallState = "pending"
	InstallInstalling InstallState = "installing"
	InstallInstalled  InstallState = "installed"
	InstallFailedS    InstallState = "failed"
	InstallCancelled  InstallState = "cancelled"
	// InstallSkipped: the install was not attempted (a rolling release
	// stopped before its batch) or its host was unreachable under
	// `unreachable: skip`.
	InstallSkipped InstallState = "skipped"
)

// InstallRecord is one (host, target) row of the detail.
type InstallRecord struct {
	Host     string       `json:"host"`
	Target   string       `json:"target"`
	State    InstallState `json:"state"`
	Path     string       `json:"path,omitempty"`
	Error    string       `json:"error,omitempty"`
	Attempts int32        `json:"attempts"`
	Started  time.Time    `json:"started,omitempty"`
	Ended    time.Time    `json:"ended,omitempty"`
	// Batch is the rolling release's batch of this host, from 1; 0 when
	// the release installs all at once.
	Batch      int  `json:"batch,omitempty"`
	RolledBack bool `json:"rolled_back,omitempty"`
}

// Event is one line of a transaction's own log, kept in the detail.
type Event struct {
	Time   time.Time `json:"time"`
	Status Status    `json:"status,omitempty"`
	Detail string    `json:"detail"`
}

// Detail is the whole picture of one transaction, the detail query's answer.
type Detail struct {
	Transaction string  `json:"transaction"`
	Request     Request `json:"request"`
	// Signer is who the manager verified signed the request
	// (auth.Signature.Signer; ClaimedSigner with authentication off), once
	// it has: a retry with the same request id must come from them.
	Signer    string                 `json:"signer,omitempty"`
	Status    Status                 `json:"status"`
	Reason    string                 `json:"reason,omitempty"`
	Builder   string                 `json:"builder,omitempty"`
	Commit    string                 `json:"commit,omitempty"`
	Artifacts map[string]ArtifactRef `json:"artifacts,omitempty"`
	Steps     []StepResult           `json:"steps,omitempty"`
	Installs  []InstallRecord        `json:"installs,omitempty"`
	// Rollout is the effective rollout and Batches its hosts per batch.
	Rollout *rollout.Policy `json:"rollout,omitempty"`
	Batches [][]string      `json:"batches,omitempty"`
	// Waiting says what a WAITING or AWAITING_APPROVAL release waits for.
	Waiting   string           `json:"waiting,omitempty"`
	Approval  *ApprovalRecord  `json:"approval,omitempty"`
	Cancelled *CancelRecord    `json:"cancelled,omitempty"`
	Rollbacks []RollbackRecord `json:"rollbacks,omitempty"`
	Events    []Event          `json:"events"`
	Started   time.Time        `json:"started"`
	Ended     time.Time        `json:"ended,omitempty"`
	// InstallPages replaces Installs in the answers of a transaction with
	// more than MaxDetailInstalls installs: their count by state, and the
	// DetailInstallsQuery reads them a page at a time.
	InstallPages *InstallPages `json:"install_pages,omitempty"`
}

// MaxDetailInstalls is the most installs one detail answer carries (about
// 250 bytes each). A transaction with more answers the detail query, and
// ends, with InstallPages instead of Installs, so no answer (query result,
// workflow result, failure) grows with the fleet: Temporal refuses payloads
// over 2 MB, and relman keeps them under 256 KB.
const MaxDetailInstalls = 500

// InstallPages says how to read the installs of a large transaction.
type InstallPages struct {
	Total    int          `json:"total"`
	PageSize int          `json:"page_size"`
	Summary  HostsSummary `json:"summary"`
}

// InstallsPage is one answer of the DetailInstallsQuery.
type InstallsPage struct {
	Offset   int             `json:"offset"`
	Total    int             `json:"total"`
	Installs []InstallRecord `json:"installs"`
}

// answer is d as the detail query and the workflow's end carry it: all of
// it, or with its installs replaced by InstallPages when there are too many.
func (d *Detail) answer() *Detail {
	if len(d.Installs) <= MaxDetailInstalls {
		return d
	}
	a := *d
	a.Installs = nil
	a.InstallPages = &InstallPages{Total: len(d.Installs), PageSize: MaxDetailInstalls, Summary: countInstalls(d.Installs)}
	return &a
}

// setDetailQueries answers the detail query and the DetailInstallsQuery
// (offset, limit: up to MaxDetailInstalls installs from offset) from d.
func setDetailQueries(ctx workflow.Context, d *Detail) error {
	if err := workflow.SetQueryHandler(ctx, DetailQuery, func() (*Detail, error) { return d.answer(), nil }); err != nil {
		return err
	}
	return workflow.SetQueryHandler(ctx, DetailInstallsQuery, func(offset, limit int) (InstallsPage, error) {
		if offset < 0 || limit < 1 {
			return InstallsPage{}, fmt.Errorf("a page of installs needs an offset of 0 or more and a limit of 1 or more, not %d and %d", offset, limit)
		}
		p := InstallsPage{Offset: offset, Total: len(d.Installs)}
		end := min(offset+min(limit, MaxDetailInstalls), len(d.Installs))
		if offset < end {
			p.Installs = d.Installs[offset:end]
		}
		return p, nil
	})
}
