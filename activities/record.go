package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/record"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// Records holds the manager's activities around closed-transaction records
// (internal/record): writing one once a transaction has closed (for the
// RecordTransaction workflow), and reading them (for the Records workflow).
type Records struct {
	// Keeper writes and reads the records; nil: the manager keeps none.
	Keeper *record.Keeper
	// Client reads the ending transaction's event history.
	Client client.Client
}

// StartRecorder starts a transaction's RecordTransaction workflow on the
// manager's queue, as the transaction ends (a local activity of it). A
// manager that keeps no records starts none. Started already (an earlier
// attempt did) is done.
func (r *Records) StartRecorder(ctx context.Context, in workflows.StartRecorderInput) error {
	if r.Keeper == nil {
		return nil
	}
	_, err := r.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       in.ID,
		TaskQueue:                                activity.GetInfo(ctx).TaskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, workflows.RecordTransactionWorkflowName, in.Record)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &started) {
		return fmt.Errorf("start the recorder of %s: %w", in.Record.Transaction, err)
	}
	return nil
}

// closeWait is how often Record looks whether the transaction has closed:
// it closes within a workflow task of starting its recorder.
const closeWait = config.DefaultRecordCloseWait

// Record is the Record activity: once the transaction has closed, it
// writes its record: the detail it closed with (its detail query, which a
// manager answers for a closed workflow too) and its whole timeline, up to
// its close event.
func (r *Records) Record(ctx context.Context, in workflows.RecordInput) (workflows.RecordResult, error) {
	if r.Keeper == nil {
		return workflows.RecordResult{}, nil
	}
	txid := in.Transaction
	started, err := r.closed(ctx, txid)
	if err != nil {
		return workflows.RecordResult{}, err
	}
	d, err := transaction.Get(ctx, r.Client, txid)
	if err != nil {
		return workflows.RecordResult{}, err
	}
	steps, err := transaction.Timeline(ctx, r.Client, txid)
	if err != nil {
		return workflows.RecordResult{}, err
	}
	w, err := r.Keeper.Write(ctx, transaction.Record{
		Transaction: txid,
		Workflow:    in.Workflow,
		Detail:      *d,
		Timeline:    steps,
		Started:     started,
	})
	if errors.Is(err, record.ErrIndexTaken) {
		return workflows.RecordResult{}, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrRecordIndexTaken, nil)
	}
	if err != nil {
		return workflows.RecordResult{}, err
	}
	return workflows.RecordResult{Key: w.Key, SHA256: w.Record.SHA256, Existed: w.Existed}, nil
}

// closed waits until the transaction's workflow has closed, heartbeating,
// and returns when Temporal started it, as SQL visibility keeps it
// (microseconds), so that a list shows the same time before and after
// Temporal forgets the transaction.
func (r *Records) closed(ctx context.Context, txid string) (time.Time, error) {
	for {
		desc, err := r.Client.DescribeWorkflowExecution(ctx, txid, "")
		if err != nil {
			return time.Time{}, fmt.Errorf("describe %s: %w", txid, err)
		}
		info := desc.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return info.GetStartTime().AsTime().Truncate(time.Microsecond), nil
		}
		activity.RecordHeartbeat(ctx, "waiting for "+txid+" to close")
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(closeWait):
		}
	}
}

// ReadRecords is the ReadRecords activity: the record of one transaction,
// gzipped, or the rows of a list. Answers that cannot change are
// non-retryable: no records kept, no record of the transaction, a record
// that does not verify.
func (r *Records) ReadRecords(ctx context.Context, in workflows.RecordsInput) (workflows.RecordsResult, error) {
	var res workflows.RecordsResult
	if r.Keeper == nil {
		return res, temporal.NewNonRetryableApplicationError(
			"this manager keeps no closed-transaction records (no artifacts in its config)", workflows.ErrNoRecords, nil)
	}
	if in.List != nil {
		f := in.List
		rows, bad, err := r.Keeper.List(ctx, transaction.Filter{Project: f.Project, Env: f.Env, Status: f.Status, Requester: f.Requester, Limit: f.Limit})
		if err != nil {
			return res, err
		}
		if res.Rows, err = json.Marshal(rows); err != nil {
			return res, err
		}
		res.Unverified = bad
		return res, nil
	}
	rec, err := r.Keeper.Record(ctx, in.Transaction)
	switch {
	case errors.Is(err, transaction.ErrNoRecord):
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("no closed-transaction record of %s", in.Transaction), workflows.ErrNoRecord, nil)
	case errors.Is(err, transaction.ErrUnverified):
		return res, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrRecordUnverified, nil)
	case err != nil:
		return res, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(rec); err != nil {
		return res, err
	}
	if err := zw.Close(); err != nil {
		return res, err
	}
	res.Record = buf.Bytes()
	return res, nil
}
