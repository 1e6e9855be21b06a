package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

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
	// DeskWorkflowName answers relman plan and relman where for one
	// manager, as updates.
	DeskWorkflowName = "Desk"
	// RecordTransactionWorkflowName writes a transaction's
	// closed-transaction record once it has closed; RecordsWorkflowName
	// reads records (record.go).
	RecordTransactionWorkflowName = "RecordTransaction"
	RecordsWorkflowName           = "Records"
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
	// PlanUpdate and WhereUpdate are the questions a Desk answers.
	PlanUpdate    = "plan"
	WhereUpdate   = "where"
	RecordsUpdate = "records"
	// CancelUpdate asks a transaction to stop, signed and authorized.
	CancelUpdate = "cancel"
	// LockAcquireUpdate asks a Lock workflow for the lock and answers at
	// once: granted, or where the release waits.
	LockAcquireUpdate = "acquire"

	// LockRequestSignal and LockReleaseSignal go to a Lock workflow;
	// LockAnswerSignal goes back to the release that asked.
	LockRequestSignal = "lock-request"
	LockReleaseSignal = "lock-release"
	LockAnswerSignal  = "lock-answer"
	// RegistrySignalName renews or deregisters at a RegistryShard.
	RegistrySignalName = "registration"
)

// Activity names. The manager's run on its queue (Plan as a local
// activity), the builder's on its manager's build queue of the project
// (BuildQueue), the installer's on its manager's host queue (HostQueue).
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
	// AcquireLockActivity and ReleaseLockActivity run as local activities
	// of a release: ask a Lock for the lock (an update, answered at once)
	// and give it back (a signal).
	AcquireLockActivity = "AcquireLock"
	ReleaseLockActivity = "ReleaseLock"
	NotifyActivity      = "Notify"
	// StartRecorderActivity starts a transaction's RecordTransaction
	// workflow (a local activity of the transaction).
	StartRecorderActivity = "StartRecorder"
	// RecordActivity writes a closed-transaction record; ReadRecordsActivity
	// reads records for the Records workflow.
	RecordActivity      = "Record"
	ReadRecordsActivity = "ReadRecords"

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

// BuildQueue is the task queue a builder polls for a project of the
// manager on managerQueue: relman-build-<project> for the default manager,
// as it always was, and <managerQueue>:relman-build-<project> for any other,
// so that segmented managers share no queue and one manager's builder never
// takes another's build. Project and host names have no ':', so no two
// managers' names can meet.
func BuildQueue(managerQueue, project string) string {
	return scopedQueue(managerQueue, config.BuildQueuePrefix+project)
}

// HostQueue is the task queue an installer host polls for the manager on
// managerQueue: relman-host-<host> for the default manager,
// <managerQueue>:relman-host-<host> for any other.
func HostQueue(managerQueue, host string) string {
	return scopedQueue(managerQueue, config.HostQueuePrefix+host)
}

func scopedQueue(managerQueue, name string) string {
	if managerQueue == "" || managerQueue == DefaultManagerQueue {
		return name
	}
	return managerQueue + ":" + name
}

// scopedQueuesVersion marks workflows of a manager on a queue other than
// relman-manager that send builds and installs to the queues BuildQueue and
// HostQueue scope by that manager; before it every manager used the
// default manager's names. The default manager's names never changed, so
// its workflows never ask.
const scopedQueuesVersion = "manager-scoped-queues"

// queueScope is the manager queue that scopes the build and host queues of
// the workflow running in ctx: its own task queue. Only Release and
// Rollback still ask the version: a run of theirs from before the change
// may be open. Every other type that sends work to hosts came after the
// change (HostFanOut, Desk) or lives for seconds (Where), so it no longer
// asks; the markers its earlier runs recorded replay all the same, as the
// SDK passes over a version marker no code asks for.
func queueScope(ctx workflow.Context) string {
	info := workflow.GetInfo(ctx)
	q := info.TaskQueueName
	if q == DefaultManagerQueue {
		return q
	}
	if t := info.WorkflowType.Name; t != ReleaseWorkflowName && t != RollbackWorkflowName {
		return q
	}
	if changeVersion(ctx, scopedQueuesVersion) == workflow.DefaultVersion {
		return DefaultManagerQueue
	}
	return q
}

// WhereIDPrefix starts the workflow id of every Where workflow.
const WhereIDPrefix = "where-"

// DeskID is the workflow id of the Desk of the manager on managerQueue:
// one per manager, like its registry.
func DeskID(managerQueue string) string { return managerQueue + "-desk" }

// Search attribute names. The dev stack registers them; a production
// namespace needs them added once (see the README).
const (
	SAProject   = "RelmanProject"
	SAEnv       = "RelmanEnv"
	SAStatus    = "RelmanStatus"
	SARequester = "RelmanRequester"
	// SAManager is the manager queue a transaction was started on, set
	// at start (not upserted), so `relman list` lists one manager's.
	SAManager = "RelmanManager"
)

// SearchAttributes lists every search attribute relman sets; all are
// Keyword.
var SearchAttributes = []string{SAProject, SAEnv, SAStatus, SARequester, SAManager}

// Application error types. Callers branch on these, never on message text.
const (
	ErrRejected = "Rejected"
	// ErrSuperseded: a newer release took the waiting release's place.
	ErrSuperseded     = "Superseded"
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
	// ErrDeskHandingOver: the Desk is about to continue as new and takes
	// no new question; ask again, the next run answers it.
	ErrDeskHandingOver = "DeskHandingOver"
	// ErrNoRecord: the manager keeps records but none of that transaction;
	// ErrNoRecords: the manager keeps no records (no artifacts);
	// ErrRecordUnverified: the record does not verify (changed after the
	// manager wrote it), so it is not shown; ErrRecordIndexTaken: the
	// record's index key holds a document that does not verify, and the
	// manager does not write over it.
	ErrNoRecord         = "NoRecord"
	ErrNoRecords        = "NoRecords"
	ErrRecordUnverified = "RecordUnverified"
	ErrRecordIndexTaken = "RecordIndexTaken"
)
