package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// A transaction outlives Temporal's retention through its closed-transaction
// record: when a Release or Rollback ends, the manager writes its detail and
// timeline, signed, into its artifact store (internal/record), and readers
// fall back to it once Temporal answers "not found". Reads go through the
// manager (the Records workflow), which holds the store and the key.

// recordVersion marks transactions that have their record written when
// they end; transactions started before it end without one.
const recordVersion = "closed-transaction-record"

// recordAttempts bounds how long a transaction whose status is final waits
// for a store that is away (about five minutes): past that it closes
// without a record rather than stay open.
const recordAttempts = 10

// RecordInput is the Record activity's argument: the transaction as it
// ends, and its workflow type.
type RecordInput struct {
	Workflow string `json:"workflow"`
	Detail   Detail `json:"detail"`
}

// RecordResult says where the record went; Key is empty when the manager
// keeps no records.
type RecordResult struct {
	Key    string `json:"key,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Existed: a record was there already (an earlier attempt wrote it).
	Existed bool `json:"existed,omitempty"`
}

// recordClosed has the manager write the transaction's closed-transaction
// record, once its status is final and d.Ended set. A store that stays
// away does not fail the transaction: it ends as it would have, logged.
func recordClosed(ctx workflow.Context, workflowType string, d *Detail) {
	if workflow.GetVersion(ctx, recordVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    recordAttempts,
		},
	})
	err := workflow.ExecuteActivity(actx, RecordActivity, RecordInput{Workflow: workflowType, Detail: *d}).Get(actx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("closed-transaction record not written", "transaction", d.Transaction, "error", err)
	}
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
// through the manager's ReadRecords activity. It is short-lived (workflow
// id "records-..."): the CLI starts it when Temporal no longer knows a
// transaction, and waits for its result.
func Records(ctx workflow.Context, in RecordsInput) (*RecordsResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{ErrNoRecord, ErrNoRecords, ErrRecordUnverified},
		},
	})
	var res RecordsResult
	if err := workflow.ExecuteActivity(ctx, ReadRecordsActivity, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RecordsIDPrefix starts the workflow id of every Records workflow.
const RecordsIDPrefix = "records-"
