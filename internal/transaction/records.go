package transaction

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// Temporal deletes a closed transaction once its namespace's retention has
// passed. A Reader then answers from what is left: the archived history,
// where the namespace archives (the frontend serves it through the same
// history API), else the transaction's closed-transaction record, which
// the manager writes when the transaction ends (internal/record).

// Record is what relman keeps of a closed transaction: its detail and its
// timeline as they stood when it ended.
type Record struct {
	Version     int              `json:"version"`
	Transaction string           `json:"transaction"`
	Workflow    string           `json:"workflow"` // Release or Rollback
	Detail      workflows.Detail `json:"detail"`
	Timeline    []Step           `json:"timeline"`
	// Started is when Temporal started the transaction's workflow: the
	// time its list row shows (the detail's Started is its first step).
	Started time.Time `json:"started,omitempty"`
	// Recorded is when the manager wrote the record.
	Recorded time.Time `json:"recorded"`
}

// Listed is the record's row in a list.
func (r *Record) Listed() Listed {
	d := r.Detail
	started := r.Started
	if started.IsZero() {
		started = d.Started
	}
	return Listed{
		Transaction: r.Transaction, Project: d.Request.Project, Env: d.Request.Env, Status: string(d.Status),
		Requester: d.Request.Requester, Started: started, Closed: d.Ended, From: FromRecord,
	}
}

// FromRecord marks a listed row that came from a closed-transaction record.
const FromRecord = "record"

// Records reads closed-transaction records: internal/record from the
// artifact store (the manager and its gateway), ManagerRecords by asking
// the manager (the CLI).
type Records interface {
	// Record returns the record of txid, verified. Its errors wrap
	// ErrNoRecord (none kept of txid), ErrNoRecords (none kept at all) or
	// ErrUnverified (it does not verify, so it is not shown).
	Record(ctx context.Context, txid string) (*Record, error)
	// List returns the rows of the records that match f, newest first,
	// and the ids of records left out because they do not verify.
	List(ctx context.Context, f Filter) ([]Listed, []string, error)
}

var (
	// ErrNoRecord: no closed-transaction record of the transaction.
	ErrNoRecord = errors.New("no closed-transaction record")
	// ErrNoRecords: the manager keeps no closed-transaction records.
	ErrNoRecords = errors.New("no closed-transaction records kept")
	// ErrUnverified: a closed-transaction record that does not verify: it
	// was changed after the manager wrote it, or signed with a key the
	// manager does not have. It is never shown as the transaction.
	ErrUnverified = errors.New("closed-transaction record does not verify")
)

// Reader reads transactions from Temporal and, once Temporal no longer has
// one, from its archived history or its closed-transaction record.
type Reader struct {
	Client client.Client
	// Namespace is Client's (empty: default): an archived history's
	// search attributes are named through it.
	Namespace string
	// Records are asked for what Temporal no longer has; nil: none.
	Records Records
	// Notice, when set, hears what a person should know about an answer
	// (that it came from a record, that records were left out of a list).
	Notice func(string)
	// Queue, when set, is the manager queue whose transactions are read:
	// a workflow under the id that is not a transaction on that queue
	// (someone with namespace access started it, and their worker could
	// answer anything) is refused as not genuine rather than read.
	Queue string
}

func (r Reader) notice(format string, args ...any) {
	if r.Notice != nil {
		r.Notice(fmt.Sprintf(format, args...))
	}
}

// Get is Get, then the archived history, then the record.
func (r Reader) Get(ctx context.Context, txid string) (*workflows.Detail, error) {
	d, err := Get(ctx, r.Client, txid)
	if err == nil && r.Queue != "" {
		if gerr := Genuine(ctx, r.Client, txid, r.Queue); gerr != nil {
			return nil, gerr
		}
	}
	if !errors.Is(err, ErrNotFound) {
		return d, err
	}
	if run := ArchivedRun(ctx, r.Client, txid); run != "" {
		if d, herr := FromHistory(ctx, r.Client, txid, run); herr == nil {
			r.notice("%s is past the namespace's retention; this is its archived history", txid)
			return d, nil
		}
	}
	rec, rerr := r.record(ctx, txid, err)
	if rerr != nil {
		return nil, rerr
	}
	return &rec.Detail, nil
}

// Timeline is Timeline, then the archived history, then the record.
func (r Reader) Timeline(ctx context.Context, txid string) ([]Step, error) {
	steps, err := Timeline(ctx, r.Client, txid)
	if !errors.Is(err, ErrNotFound) {
		return steps, err
	}
	if run := ArchivedRun(ctx, r.Client, txid); run != "" {
		if steps, herr := timeline(ctx, r.Client, txid, run, searchAttributeAliases(ctx, r.Client, r.Namespace)); herr == nil {
			r.notice("%s is past the namespace's retention; this is its archived history", txid)
			return steps, nil
		}
	}
	rec, rerr := r.record(ctx, txid, err)
	if rerr != nil {
		return nil, rerr
	}
	return rec.Timeline, nil
}

// Record returns the record of a transaction Temporal no longer has; a
// transaction Temporal has is ErrNotFound's opposite: use Get.
func (r Reader) Record(ctx context.Context, txid string) (*Record, error) {
	return r.record(ctx, txid, fmt.Errorf("no transaction %s in this namespace: %w", txid, ErrNotFound))
}

// record asks the records after Temporal answered notFound.
func (r Reader) record(ctx context.Context, txid string, notFound error) (*Record, error) {
	if r.Records == nil {
		return nil, notFound
	}
	rec, err := r.Records.Record(ctx, txid)
	switch {
	case err == nil:
		r.notice("%s is no longer in Temporal (past the namespace's retention, or deleted); this is its closed-transaction record, written %s and verified",
			txid, rec.Recorded.Local().Format(time.DateTime))
		return rec, nil
	case errors.Is(err, ErrUnverified):
		return nil, err
	case errors.Is(err, ErrNoRecord):
		return nil, fmt.Errorf("no transaction %s in this namespace, and no closed-transaction record of it; find ids with `relman list`: %w", txid, ErrNotFound)
	case errors.Is(err, ErrNoRecords):
		return nil, fmt.Errorf("no transaction %s in this namespace, and the manager keeps no closed-transaction records (no artifacts in its config), so a transaction past the namespace's retention is gone; find ids with `relman list`: %w", txid, ErrNotFound)
	}
	return nil, fmt.Errorf("no transaction %s in this namespace, and its closed-transaction record could not be read: %v: %w", txid, err, ErrNotFound)
}

// List is List, filled up from the records when Temporal has fewer rows
// than the limit: retention deletes the oldest first, so the records of
// what Temporal forgot are older than what it still has. A row Temporal
// has wins over its record.
func (r Reader) List(ctx context.Context, f Filter) ([]Listed, error) {
	rows, err := List(ctx, r.Client, f)
	if err != nil || r.Records == nil {
		return rows, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	if len(rows) >= limit {
		return rows, nil
	}
	recs, unverified, err := r.Records.List(ctx, f)
	if len(unverified) > 0 {
		r.notice("%d closed-transaction record(s) do not verify and are not listed: %s", len(unverified), strings.Join(unverified, ", "))
	}
	if errors.Is(err, ErrNoRecords) {
		return rows, nil
	}
	if err != nil {
		r.notice("closed-transaction records not listed: %v", err)
		return rows, nil
	}
	seen := map[string]bool{}
	for _, row := range rows {
		seen[row.Transaction] = true
	}
	for _, row := range recs {
		if !seen[row.Transaction] {
			rows = append(rows, row)
			seen[row.Transaction] = true
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Started.After(rows[j].Started) })
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows, nil
}

// ArchivedRun finds the run of a transaction past its namespace's
// retention in the archived visibility, where the namespace archives; ""
// when it does not (the dev server cannot), or holds no such run. The
// frontend serves an archived history by workflow and run id only.
func ArchivedRun(ctx context.Context, c client.Client, txid string) string {
	if strings.ContainsAny(txid, `'"\`) {
		return ""
	}
	resp, err := c.ListArchivedWorkflow(ctx, &workflowservice.ListArchivedWorkflowExecutionsRequest{
		PageSize: 10, Query: fmt.Sprintf("WorkflowId = '%s'", txid),
	})
	if err != nil {
		return ""
	}
	for _, e := range resp.GetExecutions() {
		if e.GetExecution().GetWorkflowId() == txid && IsTransactionType(e.GetType().GetName()) {
			return e.GetExecution().GetRunId()
		}
	}
	return ""
}

// searchAttributeAliases maps the names an archived history gives
// relman's search attributes to relman's names: Temporal's archive keeps
// the visibility store's own field names (Keyword01, ... on SQL), where a
// live history shows the aliases relman registered. Nil when the namespace
// does not say (its search attributes then keep their names).
func searchAttributeAliases(ctx context.Context, c client.Client, namespace string) map[string]string {
	if namespace == "" {
		namespace = "default"
	}
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	if err != nil {
		return nil
	}
	return resp.GetConfig().GetCustomSearchAttributeAliases()
}

// aliased renames the fields of an archived history's search attributes
// that aliases names; fields is returned as it is without aliases.
func aliased(fields map[string]*commonpb.Payload, aliases map[string]string) map[string]*commonpb.Payload {
	if len(aliases) == 0 {
		return fields
	}
	out := make(map[string]*commonpb.Payload, len(fields))
	for k, v := range fields {
		if a, ok := aliases[k]; ok {
			k = a
		}
		out[k] = v
	}
	return out
}

// FromHistory reads a closed transaction's detail from the event history
// of its run (empty: the latest): the result, or the detail its failure
// carries. Where the namespace archives, the frontend serves the history
// of a run past its retention from the archive (ArchivedRun finds the run),
// so this answers when Describe no longer can.
func FromHistory(ctx context.Context, c client.Client, txid, run string) (*workflows.Detail, error) {
	// The close event is the last one. A live history answers the filter
	// with that event alone; an archived one (Temporal's archival reads
	// ignore the filter) with every event from the first, so read to the
	// end rather than take the first.
	it := c.GetWorkflowHistory(ctx, txid, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	if !it.HasNext() {
		return nil, fmt.Errorf("no closed transaction %s in this namespace: %w", txid, ErrNotFound)
	}
	var ev *historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("no transaction %s in this namespace: %w", txid, ErrNotFound)
			}
			return nil, fmt.Errorf("history of %s: %w", txid, err)
		}
		ev = e
	}
	dc := converter.GetDefaultDataConverter()
	var d workflows.Detail
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
		if len(p) == 0 || dc.FromPayload(p[0], &d) != nil {
			return nil, fmt.Errorf("%s: its result is not a transaction's detail", txid)
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		info := ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo()
		p := info.GetDetails().GetPayloads()
		if len(p) == 0 || dc.FromPayload(p[0], &d) != nil {
			return nil, fmt.Errorf("%s: its failure carries no transaction's detail", txid)
		}
	default:
		// Cancelled and terminated transactions end without their detail;
		// only their record has it.
		return nil, fmt.Errorf("%s ended %s, which keeps no detail in the history: %w", txid, ev.GetEventType(), ErrNotFound)
	}
	if d.Transaction != txid || d.Status == "" {
		return nil, fmt.Errorf("%s: its history holds no transaction's detail", txid)
	}
	return &d, nil
}

// ManagerRecords asks the manager on Queue for its closed-transaction
// records through the Records workflow: the CLI needs neither the store's
// credentials nor the manager's key, and the manager verifies what it
// hands out.
type ManagerRecords struct {
	Client client.Client
	Queue  string
	// Wait bounds how long a reader waits for the manager; default
	// config.DefaultRecordsWait.
	Wait time.Duration
}

// Record asks the manager for the record of txid.
func (m ManagerRecords) Record(ctx context.Context, txid string) (*Record, error) {
	res, err := m.ask(ctx, workflows.RecordsInput{Transaction: txid})
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(res.Record))
	if err != nil {
		return nil, fmt.Errorf("record of %s from the manager: %w", txid, err)
	}
	var rec Record
	if err := json.NewDecoder(io.LimitReader(zr, 64<<20)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("record of %s from the manager: %w", txid, err)
	}
	return &rec, nil
}

// List asks the manager for the rows of its records that match f.
func (m ManagerRecords) List(ctx context.Context, f Filter) ([]Listed, []string, error) {
	res, err := m.ask(ctx, workflows.RecordsInput{List: &workflows.RecordsFilter{
		Project: f.Project, Env: f.Env, Status: f.Status, Requester: f.Requester, Limit: f.Limit,
	}})
	if err != nil {
		return nil, nil, err
	}
	var rows []Listed
	if len(res.Rows) > 0 {
		if err := json.Unmarshal(res.Rows, &rows); err != nil {
			return nil, nil, fmt.Errorf("records listed by the manager: %w", err)
		}
	}
	return rows, res.Unverified, nil
}

func (m ManagerRecords) ask(ctx context.Context, in workflows.RecordsInput) (*workflows.RecordsResult, error) {
	wait := m.Wait
	if wait <= 0 {
		wait = config.DefaultRecordsWait
	}
	// No manager polling its queue: say so now rather than after wait.
	if tq, err := m.Client.DescribeTaskQueue(ctx, m.Queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW); err == nil && len(tq.GetPollers()) == 0 {
		return nil, fmt.Errorf("no manager polls %s to read its closed-transaction records; start one (relman manager)", m.Queue)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The manager's Desk answers: no workflow execution per read.
	var res workflows.RecordsResult
	err := ask(ctx, m.Client, m.Queue, workflows.RecordsUpdate, in, &res)
	if err == nil {
		return &res, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case workflows.ErrNoRecord:
			return nil, fmt.Errorf("%s: %w", app.Message(), ErrNoRecord)
		case workflows.ErrNoRecords:
			return nil, fmt.Errorf("%s: %w", app.Message(), ErrNoRecords)
		case workflows.ErrRecordUnverified:
			return nil, fmt.Errorf("%s: %w", app.Message(), ErrUnverified)
		}
		return nil, errors.New(app.Message())
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("the manager on %s did not answer within %s for closed-transaction records", m.Queue, wait)
	}
	return nil, fmt.Errorf("ask the manager for closed-transaction records: %w", err)
}
