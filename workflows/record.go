package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// A transaction outlives Temporal's retention through its closed-transaction
// record. Just before a Release or Rollback sets its final status, the
// manager starts a RecordTransaction workflow that outlives it; that waits until
// the transaction has closed, then has the manager write its detail and
// whole timeline, signed, into its artifact store (internal/record).
// Readers fall back to the record once Temporal answers "not found"; the
// CLI reads through the manager (the Records workflow), which holds the
// store and the key.
//
// A workflow of its own, rather than an activity at the end, and started
// before the final status rather than after it: the final
// status and the close then come in one workflow task, so a client that
// sees the final status reads a history that has ended, exactly as before
// records; a store that is away delays the record, never the transaction;
// and the record holds the history up to its close event.

// recordVersion marks transactions that have their record written when
// they end; transactions started before it end without one.
const recordVersion = "closed-transaction-record"

// RecordIDSuffix ends the workflow id of a transaction's recorder:
// "<run id>/record", the run id of the transaction's workflow. The run id
// rather than the transaction id because a replay knows the one and not
// the other (saved histories replay under a made-up workflow id); and no
// transaction id has a '/' (uuids, and request ids are letters, digits,
// '.', '_', ':', '-'), so a recorder never takes one's id.
const RecordIDSuffix = "/record"

// recordRetry outlasts a store that is away for a while: the recorder keeps
// trying for a week, ten minutes apart at most, and holds nothing up.
var recordRetry = &temporal.RetryPolicy{
	InitialInterval:        config.DefaultRecordRetryInterval,
	BackoffCoefficient:     2,
	MaximumInterval:        config.DefaultRecordRetryMax,
	NonRetryableErrorTypes: []string{ErrRecordIndexTaken},
}

const recordScheduleToClose = config.DefaultRecordPatience

// RecordInput is the RecordTransaction workflow's and the Record
// activity's argument: the transaction to record once it has closed, and
// its workflow type.
type RecordInput struct {
	Workflow    string `json:"workflow"`
	Transaction string `json:"transaction"`
}

// RecordResult says where the record went; Key is empty when the manager
// keeps no records.
type RecordResult struct {
	Key    string `json:"key,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Existed: a record was there already (an earlier attempt wrote it).
	Existed bool `json:"existed,omitempty"`
}

// recordStartVersion marks transactions whose recorder the manager starts
// (a local activity), not the workflow as its child: the child's start
// cost two task dispatches at the end of every transaction (the start, and
// the workflow task that sees it started), the local activity none.
const recordStartVersion = "record-started-by-manager"

// StartRecorderInput is the StartRecorder local activity's argument: the
// recorder's workflow id and what it records.
type StartRecorderInput struct {
	ID     string      `json:"id"`
	Record RecordInput `json:"record"`
}

// recordClosed starts the transaction's recorder. The manager starts it
// (StartRecorderActivity, a local activity): it is not a child, so the
// transaction need not wait for it to start. Transactions from before
// start it as a child and wait until it has started, since a child not
// yet started when its parent closes is never started. A recorder that
// cannot start is logged; the transaction goes on as it would have.
func recordClosed(ctx workflow.Context, txid string) {
	if changeVersion(ctx, recordVersion) == workflow.DefaultVersion {
		return
	}
	info := workflow.GetInfo(ctx)
	in := RecordInput{Workflow: info.WorkflowType.Name, Transaction: txid}
	if changeVersion(ctx, recordStartVersion) == 1 {
		lctx := withLocalActivity(ctx, &temporal.RetryPolicy{InitialInterval: config.DefaultLocalRetryInterval, MaximumAttempts: config.DefaultManagerActivityAttempts})
		err := workflow.ExecuteLocalActivity(lctx, StartRecorderActivity, StartRecorderInput{ID: info.WorkflowExecution.RunID + RecordIDSuffix, Record: in}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Warn("closed-transaction record not started", "transaction", txid, "error", err)
		}
		return
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        workflow.GetInfo(ctx).WorkflowExecution.RunID + RecordIDSuffix,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	})
	f := workflow.ExecuteChildWorkflow(cctx, RecordTransactionWorkflowName, in)
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("closed-transaction record not started", "transaction", txid, "error", err)
	}
}

// RecordTransaction has the manager write the closed-transaction record of
// the transaction that started it (RecordActivity), retried until the
// store takes it.
func RecordTransaction(ctx workflow.Context, in RecordInput) (*RecordResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    config.DefaultRecordTimeout,
		ScheduleToCloseTimeout: recordScheduleToClose,
		HeartbeatTimeout:       config.DefaultHeartbeatTimeout,
		RetryPolicy:            recordRetry,
	})
	var res RecordResult
	if err := workflow.ExecuteActivity(ctx, RecordActivity, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RecordsInput asks the manager for closed-transaction records: the one of
// Transaction, or with List set, the rows that match it.
type RecordsInput struct {
	Transaction string         `json:"transaction,omitempty"`
	List        *RecordsFilter `json:"list,omitempty"`
}

// RecordsFilter is a list's filter (internal/transaction.Filter); empty
// fields match everything.
type RecordsFilter struct {
	Project   string `json:"project,omitempty"`
	Env       string `json:"env,omitempty"`
	Status    string `json:"status,omitempty"`
	Requester string `json:"requester,omitempty"`
	Limit     int    `json:"limit"`
}

// RecordsResult is the manager's answer, verified by the manager. Record
// is the gzipped JSON of one record (internal/transaction.Record) and Rows
// the JSON of the listed rows: a record's timeline grows with its hosts,
// and gzip keeps a 1,000-host record well under Temporal's payload limit.
type RecordsResult struct {
	Record []byte `json:"record,omitempty"`
	Rows   []byte `json:"rows,omitempty"`
	// Unverified names the listed records that did not verify and were
	// left out.
	Unverified []string `json:"unverified,omitempty"`
}

// Records answers a reader's question about closed-transaction records
// through the manager's ReadRecords activity, as a short workflow of its
// own (workflow id "records-..."). Readers ask the manager's Desk now
// (update "records"); Records stays registered so the executions it ran
// still replay.
func Records(ctx workflow.Context, in RecordsInput) (*RecordsResult, error) {
	return readRecords(ctx, in)
}

// readRecords runs the manager's ReadRecords activity.
func readRecords(ctx workflow.Context, in RecordsInput) (*RecordsResult, error) {
	ctx = withShortActivity(ctx, config.DefaultReadRecordsTimeout, config.DefaultReadAttempts, ErrNoRecord, ErrNoRecords, ErrRecordUnverified)
	var res RecordsResult
	if err := workflow.ExecuteActivity(ctx, ReadRecordsActivity, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RecordsIDPrefix starts the workflow id of every Records workflow.
const RecordsIDPrefix = "records-"
