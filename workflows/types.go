// Package workflows holds relman's Temporal workflows: Release, the durable
// transaction of one request, and Registry, the leases of builders and
// installer hosts. Workflows are deterministic; all I/O lives in activities.
package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/relman/relman/internal/auth"
)

// Names under which workflows, queries and updates are registered. They are
// part of stored histories: never rename them.
const (
	ReleaseWorkflowName  = "Release"
	RegistryWorkflowName = "Registry"

	StatusQuery        = "status"
	DetailQuery        = "detail"
	RegistrationsQuery = "registrations"

	RegisterUpdate   = "register"
	DeregisterUpdate = "deregister"
)

// Default names of the manager's queue and registry workflow id. One manager is
// one (namespace, manager queue, registry id).
const (
	DefaultManagerQueue = "relman-manager"
	DefaultRegistryID   = "relman-registry"
)

// BuildQueue is the task queue a builder polls for a project.
func BuildQueue(project string) string { return "relman-build-" + project }

// HostQueue is the task queue an installer host polls.
func HostQueue(host string) string { return "relman-host-" + host }

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
)

// Final reports whether no further status can follow s for the given action.
func (s Status) Final(action Action) bool {
	switch s {
	case StatusInstallCompleted, StatusRejected, StatusBuildFailed, StatusInstallFailed, StatusCancelled,
		StatusRollbackCompleted, StatusRollbackFailed:
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
	Rollout *Rollout `json:"rollout,omitempty"`
}

// ReleaseInput is the Release workflow's one argument.
type ReleaseInput struct {
	Request Request `json:"request"`
	// Signature proves who asked (a token's signature, or the gateway's);
	// the manager checks it and records the principal as the requester.
	Signature *auth.Signature `json:"signature,omitempty"`
	// Timeouts; zero means the default.
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	// HostTimeout bounds how long an install waits for its host to pick it up.
	HostTimeout time.Duration `json:"host_timeout,omitempty"`
}

// ArtifactRef names a build output in the artifact store. The bytes never
// travel through Temporal; only this reference does.
type ArtifactRef struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Format is "tar.gz" for a directory output, "file" for a single file.
	Format string `json:"format"`
	// Name is the file name of a single-file output.
	Name string `json:"name,omitempty"`
}

// Plan is what the manager found for a request: every named target of the
// project and the hosts that install it in the environment.
type Plan struct {
	Targets []string            `json:"targets"`
	Hosts   map[string][]string `json:"hosts"` // target -> hosts, sorted
	// Timeouts from the manager's config; the request's own win.
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	HostTimeout    time.Duration `json:"host_timeout,omitempty"`
	// Principal is who the manager found asked, when authentication is on.
	Principal string `json:"principal,omitempty"`
	// HeartbeatTimeout: how long a silent build or install counts as lost.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// The environment's safety settings (safety_types.go); their zero
	// values are the behavior releases had before them, which the saved
	// histories rely on.
	Rollout  Rollout  `json:"rollout"`
	Lock     string   `json:"lock,omitempty"` // wait, refuse, or off/empty
	Approval Approval `json:"approval"`
	Webhooks []string `json:"webhooks,omitempty"`
}

// BuildInput is the build activity's argument.
type BuildInput struct {
	Transaction string   `json:"transaction"`
	Project     string   `json:"project"`
	Source      Selector `json:"source"`
	Targets     []string `json:"targets"`
	// Rebuild skips the lookup of an earlier identical build.
	Rebuild bool `json:"rebuild,omitempty"`
}

// BuildResult is what a build produced.
type BuildResult struct {
	Builder   string                 `json:"builder"`
	Commit    string                 `json:"commit"`
	Artifacts map[string]ArtifactRef `json:"artifacts"` // named target -> artifact
	Steps     []StepResult           `json:"steps"`
	// Reused: no step ran; the artifacts are those of an earlier build of
	// the same commit and build config (Steps are that build's).
	Reused bool `json:"reused,omitempty"`
}

// StepResult records one build step.
type StepResult struct {
	Name     string        `json:"name"`
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration"`
}

// InstallInput is the install activity's argument.
type InstallInput struct {
	Transaction string      `json:"transaction"`
	Project     string      `json:"project"`
	Env         string      `json:"env"`
	Target      string      `json:"target"`
	Artifact    ArtifactRef `json:"artifact"`
}

// InstallResult is what one host did for one target.
type InstallResult struct {
	Host     string `json:"host"`
	Path     string `json:"path"`
	Behavior string `json:"behavior"`
	Attempt  int32  `json:"attempt"`
}

// InstallState is the state of one (host, target) install.
type InstallState string

const (
	InstallPending    InstallState = "pending"
	InstallInstalling InstallState = "installing"
	InstallInstalled  InstallState = "installed"
	InstallFailedS    InstallState = "failed"
	InstallCancelled  InstallState = "cancelled"
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
	Transaction string                 `json:"transaction"`
	Request     Request                `json:"request"`
	Status      Status                 `json:"status"`
	Reason      string                 `json:"reason,omitempty"`
	Builder     string                 `json:"builder,omitempty"`
	Commit      string                 `json:"commit,omitempty"`
	Artifacts   map[string]ArtifactRef `json:"artifacts,omitempty"`
	Steps       []StepResult           `json:"steps,omitempty"`
	Installs    []InstallRecord        `json:"installs,omitempty"`
	// Rollout is the effective rollout and Batches its hosts per batch.
	Rollout *Rollout   `json:"rollout,omitempty"`
	Batches [][]string `json:"batches,omitempty"`
	// Waiting says what a WAITING or AWAITING_APPROVAL release waits for.
	Waiting   string           `json:"waiting,omitempty"`
	Approval  *ApprovalRecord  `json:"approval,omitempty"`
	Rollbacks []RollbackRecord `json:"rollbacks,omitempty"`
	Events    []Event          `json:"events"`
	Started   time.Time        `json:"started"`
	Ended     time.Time        `json:"ended,omitempty"`
}

// Application error types. Callers branch on these, never on message text.
const (
	ErrRejected       = "Rejected"
	ErrBuildFailed    = "BuildFailed"
	ErrInstallFailed  = "InstallFailed"
	ErrChecksum       = "ChecksumMismatch"
	ErrUnknownTarget  = "UnknownTarget"
	ErrBadArtifact    = "BadArtifact"
	ErrSourceFailed   = "SourceFailed"
	ErrUnknownProject = "UnknownProject"
	ErrInvalidRequest = "InvalidRequest"
)

// AuthorizeActivity checks who signed a rollback or an approval decision
// and whether the policy lets them.
const AuthorizeActivity = "Authorize"

// AuthorizeInput is the Authorize activity's argument.
type AuthorizeInput struct {
	Transaction string          `json:"transaction"`
	Action      string          `json:"action"` // an auth action: install, approve
	Project     string          `json:"project"`
	Env         string          `json:"env,omitempty"`
	Payload     []byte          `json:"payload"` // what the signature covers
	Signature   *auth.Signature `json:"signature,omitempty"`
	// Claimed is the name the client gave; it stands when auth is off.
	Claimed string `json:"claimed,omitempty"`
}

// Activity names, registered explicitly so renaming Go code never breaks
// stored histories.
const (
	PlanActivity = "Plan"
	// EarlierBuildActivity reads the build of the transaction a request
	// installs from.
	EarlierBuildActivity = "EarlierBuild"
	BuildActivity        = "Build"
	InstallActivity      = "Install"
)

// PlanInput is the plan activity's argument.
type PlanInput struct {
	Request     Request         `json:"request"`
	Transaction string          `json:"transaction,omitempty"`
	Signature   *auth.Signature `json:"signature,omitempty"`
}

// InstallFailure rides as the details of an install error, so the workflow
// learns how many attempts the host made.
type InstallFailure struct {
	Host    string `json:"host"`
	Attempt int32  `json:"attempt"`
}

// Search attribute names. The dev stack registers them; a production
// namespace needs them added once (see the README).
const (
	SAProject   = "RelmanProject"
	SAEnv       = "RelmanEnv"
	SAStatus    = "RelmanStatus"
	SARequester = "RelmanRequester"
)

// SignedPayload is what a request's signature covers: the transaction id
// and the request, so a signature is good for exactly one transaction.
// encoding/json writes a struct's fields in declaration order, so the bytes
// are the same on every replay (workflowcheck cannot see that).
//
//workflowcheck:ignore
func SignedPayload(txid string, req Request) []byte {
	b, _ := json.Marshal(struct {
		Transaction string  `json:"transaction"`
		Request     Request `json:"request"`
	}{txid, req})
	return b
}
