package workflows

// Names under which workflows, queries, updates, signals and activities are
// registered (workers.Register... holds the one list of what each role
// registers). They are part of stored histories: never rename them.
const (
	ReleaseWorkflowName  = "Release"
	RegistryWorkflowName = "Registry"
	LockWorkflowName     = "Lock"
	PlanOnlyWorkflowName = "PlanOnly"
	// WhereWorkflowName answers which transaction is live on which host.
	WhereWorkflowName = "Where"
	// RollbackWorkflowName is a rollback transaction.
	RollbackWorkflowName = "Rollback"
	// RegistryShardWorkflowName holds one shard of a manager's
	// registrations (registryshard.go); Registry is the single registry
	// of earlier versions, still read until its leases expire.
	RegistryShardWorkflowName = "RegistryShard"
	// HostFanOutWorkflowName runs one chunk of a large fan-out to hosts as
	// a child of the transaction (fanout.go).
	HostFanOutWorkflowName = "HostFanOut"

	StatusQuery        = "status"
	DetailQuery        = "detail"
	RegistrationsQuery = "registrations"
	LockQuery          = "lock"
	// DetailInstallsQuery pages through a large transaction's installs.
	DetailInstallsQuery = "detail-installs"

	RegisterUpdate   = "register"
	DeregisterUpdate = "deregister"
	ApproveUpdate    = "approve"
	RejectUpdate     = "reject"

	// LockRequestSignal and LockReleaseSignal go to a Lock workflow;
	// LockAnswerSignal goes back to the release that asked.
	LockRequestSignal = "lock-request"
	LockReleaseSignal = "lock-release"
	LockAnswerSignal  = "lock-answer"
	// RegistrySignalName renews or deregisters at a RegistryShard.
	RegistrySignalName = "registration"
)

// Activity names. The manager's run on its queue (Plan as a local
// activity), the builder's on relman-build-<project>, the installer's on
// relman-host-<host>.
const (
	// PlanActivity checks a request and finds its hosts (activities.Manager.Plan).
	PlanActivity = "Plan"
	// EarlierBuildActivity reads the build of the transaction a request
	// installs from.
	EarlierBuildActivity = "EarlierBuild"
	// AuthorizeActivity checks who signed a rollback or an approval
	// decision and whether the policy lets them.
	AuthorizeActivity = "Authorize"
	// HostsActivity lists the hosts registered for each named target of a
	// project in an environment (where, rollback).
	HostsActivity          = "Hosts"
	RequestLockActivity    = "RequestLock"
	LockHolderOpenActivity = "LockHolderOpen"
	NotifyActivity         = "Notify"

	BuildActivity = "Build"

	InstallActivity = "Install"
	// WhereActivity reads the live install of named targets on a host.
	WhereActivity = "Where"
	// RollbackActivity switches one named target back on a host.
	RollbackActivity = "Rollback"
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

// WhereIDPrefix starts the workflow id of every Where workflow.
const WhereIDPrefix = "where-"

// Search attribute names. The dev stack registers them; a production
// namespace needs them added once (see the README).
const (
	SAProject   = "RelmanProject"
	SAEnv       = "RelmanEnv"
	SAStatus    = "RelmanStatus"
	SARequester = "RelmanRequester"
)

// SearchAttributes lists every search attribute relman sets; all are
// Keyword.
var SearchAttributes = []string{SAProject, SAEnv, SAStatus, SARequester}

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
	// ErrRollbackUnsupported: the target's behavior keeps no earlier
	// release to switch back to.
	ErrRollbackUnsupported = "RollbackUnsupported"
	// ErrReleaseNotFound: the release to roll back to is not on the host.
	ErrReleaseNotFound = "ReleaseNotFound"
	// ErrHealthCheck: the target's health check failed after an install.
	ErrHealthCheck = "HealthCheckFailed"
)
