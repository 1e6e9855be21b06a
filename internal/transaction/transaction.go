// Package transaction is the client side of relman's transactions: start a
// release, read its status and detail, wait for it, turn its event history
// into a timeline, and list transactions. The CLI and the XML-RPC gateway
// both use it.
package transaction

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/internal/auth"
	"github.com/relman/relman/workflows"
)

// ErrNotFound: no transaction has that id.
var ErrNotFound = errors.New("transaction not found")

// ErrBadRequestID: a request id that cannot be a transaction id.
var ErrBadRequestID = errors.New("bad request id")

// requestIDPattern keeps a requester-chosen id usable as a workflow id, in a
// file name and on a command line.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// ErrNotYet: the transaction exists but has not answered yet (its first
// workflow task is still queued).
var ErrNotYet = errors.New("transaction has not answered yet")

// Start starts the Release workflow. A request id makes the start
// idempotent: the same id returns the transaction already started.
func Start(ctx context.Context, c client.Client, queue, requestID string, req workflows.Request) (string, error) {
	return StartSigned(ctx, c, queue, requestID, req, nil)
}

// Signer signs a request for one transaction id (see internal/auth).
type Signer func(txid string, req workflows.Request) *auth.Signature

// StartSigned is Start with the request signed by sign, when not nil. A
// transaction id never starts twice, so a signature cannot be replayed.
func StartSigned(ctx context.Context, c client.Client, queue, requestID string, req workflows.Request, sign Signer) (string, error) {
	txid := requestID
	if txid != "" && !requestIDPattern.MatchString(txid) {
		return "", fmt.Errorf("request id %q must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit: %w", requestID, ErrBadRequestID)
	}
	if txid == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return "", err
		}
		txid = u.String()
	}
	opts := client.StartWorkflowOptions{ID: txid, TaskQueue: queue, WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}
	if requestID != "" {
		opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	}
	in := workflows.ReleaseInput{Request: req}
	if sign != nil {
		in.Signature = sign(txid, req)
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.ReleaseWorkflowName, in)
	if err != nil {
		return "", fmt.Errorf("start release of %s: %w", req.Project, err)
	}
	return run.GetID(), nil
}

// Wait polls the detail until the status is final, and returns it whole.
// Polling a query keeps working across manager restarts, unlike holding a
// result stream. While it polls, a large transaction's detail carries its
// installs' count by state (InstallPages), not the installs themselves.
func Wait(ctx context.Context, c client.Client, txid string, onChange func(*workflows.Detail)) (*workflows.Detail, error) {
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	var last *workflows.Detail
	for {
		d, err := get(ctx, c, txid, false)
		if err != nil && !errors.Is(err, ErrNotYet) {
			return nil, err
		}
		if d != nil {
			if onChange != nil {
				onChange(d)
			}
			last = d
			if d.Status.Final(d.Request.Action) {
				if d.InstallPages == nil {
					return d, nil
				}
				return Get(ctx, c, txid)
			}
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return last, ctx.Err()
			}
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Get reads a transaction's detail: from the workflow's query while a
// manager answers, otherwise from its stored result or failure, so a closed
// transaction stays readable with no manager running. The installs of a
// large transaction are read a page at a time (workflows.InstallPages) and
// put back into Installs, so the detail is whole; with no manager running
// only their count by state is left.
func Get(ctx context.Context, c client.Client, txid string) (*workflows.Detail, error) {
	return get(ctx, c, txid, true)
}

func get(ctx context.Context, c client.Client, txid string, installs bool) (*workflows.Detail, error) {
	v, qerr := c.QueryWorkflow(ctx, txid, "", workflows.DetailQuery)
	if qerr == nil {
		var d workflows.Detail
		if err := v.Get(&d); err != nil {
			return nil, err
		}
		if d.Status == "" {
			return nil, ErrNotYet
		}
		if installs && d.InstallPages != nil {
			if err := readInstalls(ctx, c, txid, &d); err != nil {
				return nil, err
			}
		}
		return &d, nil
	}
	desc, err := c.DescribeWorkflowExecution(ctx, txid, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("no transaction %s in this namespace; find ids with `relman list`: %w", txid, ErrNotFound)
		}
		return nil, fmt.Errorf("read transaction %s: %w", txid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if !isTransactionType(info.GetType().GetName()) {
		return nil, fmt.Errorf("%s is a %s workflow, not a relman transaction", txid, info.GetType().GetName())
	}
	if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, ErrNotYet
	}
	var d workflows.Detail
	err = c.GetWorkflow(ctx, txid, "").Get(ctx, &d)
	if err == nil {
		return &d, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		if app.Details(&d) == nil && d.Status != "" {
			return &d, nil
		}
	}
	// A cancelled or terminated transaction: what the search attributes say.
	d = workflows.Detail{Transaction: txid, Reason: err.Error()}
	if sa := info.GetSearchAttributes().GetIndexedFields(); sa != nil {
		var s string
		if p, ok := sa[workflows.SAStatus]; ok && converter.GetDefaultDataConverter().FromPayload(p, &s) == nil {
			d.Status = workflows.Status(s)
		}
	}
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		d.Status = workflows.StatusCancelled
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		if !d.Status.Final(workflows.ActionInstall) {
			d.Status = workflows.StatusCancelled
		}
	}
	if d.Status == "" {
		d.Status = workflows.StatusCancelled
	}
	d.Request.Action = workflows.ActionInstall
	return &d, nil
}

// readInstalls pages through a large transaction's installs into
// d.Installs. InstallPages stays, saying how many there were by state.
func readInstalls(ctx context.Context, c client.Client, txid string, d *workflows.Detail) error {
	p := d.InstallPages
	all := make([]workflows.InstallRecord, 0, p.Total)
	for off := 0; off < p.Total; {
		v, err := c.QueryWorkflow(ctx, txid, "", workflows.DetailInstallsQuery, off, p.PageSize)
		if err != nil {
			return fmt.Errorf("read installs %d to %d of transaction %s: %w", off, off+p.PageSize, txid, err)
		}
		var page workflows.InstallsPage
		if err := v.Get(&page); err != nil {
			return fmt.Errorf("read installs of transaction %s: %w", txid, err)
		}
		if len(page.Installs) == 0 {
			break
		}
		all = append(all, page.Installs...)
		off += len(page.Installs)
	}
	d.Installs = all
	return nil
}

// Step is one line of a transaction's timeline, built from its Temporal
// event history: the seed's history table.
type Step struct {
	Time     time.Time     `json:"time"`
	Event    string        `json:"event"`
	Activity string        `json:"activity,omitempty"`
	Queue    string        `json:"queue,omitempty"`
	Worker   string        `json:"worker,omitempty"`
	Attempt  int32         `json:"attempt,omitempty"`
	Took     time.Duration `json:"took,omitempty"`
	Detail   string        `json:"detail,omitempty"`
}

// Timeline reads a transaction's event history and turns it into steps.
func Timeline(ctx context.Context, c client.Client, txid string) ([]Step, error) {
	it := c.GetWorkflowHistory(ctx, txid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	acts := map[int64]*scheduled{}
	kids := map[int64]time.Time{}
	var out []Step
	dc := converter.GetDefaultDataConverter()
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("no transaction %s in this namespace; find ids with `relman list`: %w", txid, ErrNotFound)
			}
			return nil, fmt.Errorf("history of %s: %w", txid, err)
		}
		t := ev.GetEventTime().AsTime()
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a := ev.GetWorkflowExecutionStartedEventAttributes()
			s := Step{Time: t, Event: "requested", Queue: a.GetTaskQueue().GetName()}
			var in workflows.ReleaseInput
			if p := a.GetInput().GetPayloads(); len(p) > 0 && dc.FromPayload(p[0], &in) == nil && in.Request.Project != "" {
				r := in.Request
				s.Detail = fmt.Sprintf("%s of %s from %s", r.Action, r.Project, r.Source)
				if r.Env != "" {
					s.Detail += " into " + r.Env
				}
				if r.Requester != "" {
					s.Detail += " by " + r.Requester
				}
			}
			out = append(out, s)
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			f := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if p, ok := f[workflows.SAStatus]; ok {
				var st string
				if dc.FromPayload(p, &st) == nil {
					out = append(out, Step{Time: t, Event: "status " + st})
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a := ev.GetActivityTaskScheduledEventAttributes()
			acts[ev.GetEventId()] = &scheduled{name: a.GetActivityType().GetName(), queue: a.GetTaskQueue().GetName()}
			out = append(out, Step{Time: t, Event: "scheduled", Activity: a.GetActivityType().GetName(), Queue: a.GetTaskQueue().GetName()})
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := ev.GetActivityTaskStartedEventAttributes()
			if s := acts[a.GetScheduledEventId()]; s != nil {
				s.started, s.worker, s.attempt = t, a.GetIdentity(), a.GetAttempt()
				detail := ""
				if f := a.GetLastFailure(); f != nil {
					detail = "after failure: " + f.GetMessage()
				}
				out = append(out, Step{Time: t, Event: "started", Activity: s.name, Queue: s.queue, Worker: s.worker, Attempt: s.attempt, Detail: detail})
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			out = append(out, actEnd(acts[a.GetScheduledEventId()], t, "completed", ""))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			a := ev.GetActivityTaskFailedEventAttributes()
			out = append(out, actEnd(acts[a.GetScheduledEventId()], t, "failed", a.GetFailure().GetMessage()))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			a := ev.GetActivityTaskTimedOutEventAttributes()
			msg := a.GetFailure().GetMessage()
			if ti := a.GetFailure().GetTimeoutFailureInfo(); ti != nil {
				msg = strings.TrimSpace(msg + " " + ti.GetTimeoutType().String())
			}
			out = append(out, actEnd(acts[a.GetScheduledEventId()], t, "timed out", msg))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			a := ev.GetActivityTaskCanceledEventAttributes()
			out = append(out, actEnd(acts[a.GetScheduledEventId()], t, "cancelled", ""))
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
			// A large fan-out's chunks (HostFanOut): their own histories
			// hold the installs.
			a := ev.GetChildWorkflowExecutionStartedEventAttributes()
			kids[a.GetInitiatedEventId()] = t
			out = append(out, Step{Time: t, Event: "child started", Activity: a.GetWorkflowType().GetName(), Detail: a.GetWorkflowExecution().GetWorkflowId()})
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
			a := ev.GetChildWorkflowExecutionCompletedEventAttributes()
			out = append(out, childEnd(kids, a.GetInitiatedEventId(), t, "child completed", a.GetWorkflowType().GetName(), a.GetWorkflowExecution().GetWorkflowId()))
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
			a := ev.GetChildWorkflowExecutionFailedEventAttributes()
			out = append(out, childEnd(kids, a.GetInitiatedEventId(), t, "child failed", a.GetWorkflowType().GetName(), a.GetWorkflowExecution().GetWorkflowId()+": "+a.GetFailure().GetMessage()))
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
			a := ev.GetChildWorkflowExecutionCanceledEventAttributes()
			out = append(out, childEnd(kids, a.GetInitiatedEventId(), t, "child cancelled", a.GetWorkflowType().GetName(), a.GetWorkflowExecution().GetWorkflowId()))
		case enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
			a := ev.GetChildWorkflowExecutionTerminatedEventAttributes()
			out = append(out, childEnd(kids, a.GetInitiatedEventId(), t, "child terminated", a.GetWorkflowType().GetName(), a.GetWorkflowExecution().GetWorkflowId()))
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
			out = append(out, Step{Time: t, Event: "cancel requested", Detail: ev.GetWorkflowExecutionCancelRequestedEventAttributes().GetIdentity()})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
			out = append(out, Step{Time: t, Event: "ended"})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
			out = append(out, Step{Time: t, Event: "ended", Detail: ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
			out = append(out, Step{Time: t, Event: "ended", Detail: "cancelled"})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
			out = append(out, Step{Time: t, Event: "terminated", Detail: ev.GetWorkflowExecutionTerminatedEventAttributes().GetReason()})
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
			out = append(out, Step{Time: t, Event: "timed out"})
		}
	}
	return out, nil
}

// scheduled is an activity seen scheduled, remembered until it ends.
type scheduled struct {
	name, queue string
	started     time.Time
	worker      string
	attempt     int32
}

func actEnd(s *scheduled, t time.Time, event, detail string) Step {
	if s == nil {
		return Step{Time: t, Event: event, Detail: detail}
	}
	st := Step{Time: t, Event: event, Activity: s.name, Queue: s.queue, Worker: s.worker, Attempt: s.attempt, Detail: detail}
	if !s.started.IsZero() {
		st.Took = t.Sub(s.started)
	}
	return st
}

func childEnd(kids map[int64]time.Time, initiated int64, t time.Time, event, typ, detail string) Step {
	st := Step{Time: t, Event: event, Activity: typ, Detail: detail}
	if t0, ok := kids[initiated]; ok {
		st.Took = t.Sub(t0)
	}
	return st
}

// Listed is one transaction as the list shows it.
type Listed struct {
	Transaction string    `json:"transaction"`
	Project     string    `json:"project"`
	Env         string    `json:"env,omitempty"`
	Status      string    `json:"status"`
	Requester   string    `json:"requester,omitempty"`
	Started     time.Time `json:"started"`
	Closed      time.Time `json:"closed,omitempty"`
}

// Filter narrows a list; empty fields match everything.
type Filter struct {
	Project, Env, Status, Requester string
	Limit                           int
}

// ErrBadFilter: a filter value that cannot go into a visibility query.
var ErrBadFilter = errors.New("bad filter")

// List returns transactions newest first through the search attributes.
func List(ctx context.Context, c client.Client, f Filter) ([]Listed, error) {
	if f.Limit <= 0 {
		f.Limit = 20
	}
	q := []string{transactionTypesQuery}
	for _, kv := range []struct{ attr, val, name string }{
		{workflows.SAProject, f.Project, "project"},
		{workflows.SAEnv, f.Env, "env"},
		{workflows.SAStatus, strings.ToUpper(f.Status), "status"},
		{workflows.SARequester, f.Requester, "requester"},
	} {
		if kv.val == "" {
			continue
		}
		if strings.ContainsAny(kv.val, "'\"\\") {
			return nil, fmt.Errorf("%s must not contain quotes or backslashes: %w", kv.name, ErrBadFilter)
		}
		q = append(q, fmt.Sprintf("%s = '%s'", kv.attr, kv.val))
	}
	rows := []Listed{}
	var token []byte
	dc := converter.GetDefaultDataConverter()
	for len(rows) < f.Limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: strings.Join(q, " AND "), PageSize: int32(min(f.Limit, 1000)), NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list transactions: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			r := Listed{Transaction: e.GetExecution().GetWorkflowId(), Started: e.GetStartTime().AsTime()}
			if e.GetCloseTime() != nil {
				r.Closed = e.GetCloseTime().AsTime()
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			for attr, dst := range map[string]*string{workflows.SAProject: &r.Project, workflows.SAEnv: &r.Env, workflows.SAStatus: &r.Status, workflows.SARequester: &r.Requester} {
				if p, ok := fields[attr]; ok {
					_ = dc.FromPayload(p, dst)
				}
			}
			rows = append(rows, r)
			if len(rows) == f.Limit {
				break
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	return rows, nil
}
