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

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
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

// ErrRequestIDReused: a request id sent again with a different request,
// or one that names a transaction someone else started.
var ErrRequestIDReused = errors.New("request id already used")

// Start starts the Release workflow. A request id makes the start
// idempotent: the same id from the same requester with the same request
// returns the transaction already started.
func Start(ctx context.Context, c client.Client, queue, requestID string, req workflows.Request) (string, error) {
	return StartSigned(ctx, c, queue, requestID, req, nil)
}

// Signer signs requests for one requester (see auth/signature.go).
type Signer struct {
	// ID is who signs as the manager finds it in a verified signature
	// (auth.Signature.Signer): request ids are scoped to it.
	ID string
	// Sign signs a payload (workflows.SignedStart.Payload,
	// CancelPayload, DecisionPayload).
	Sign func(payload []byte) *auth.Signature
}

// signerID is who a request is scoped to: its signer, or with none the
// name it claims (all there is with authentication off).
func signerID(sign *Signer, req workflows.Request) string {
	if sign != nil {
		return sign.ID
	}
	return workflows.ClaimedSigner(req.Requester)
}

// StartSigned is Start with the request signed by sign, when not nil. The
// signature covers the transaction id and everything that runs, and the
// manager refuses a second run of the id, so it cannot be replayed. With a
// request id the transaction id is derived from it, the manager's queue
// and the signer (workflows.RequestTransactionID): a request id never
// becomes a workflow id as it is. When that transaction exists, it is
// returned only if the same signer asked for the same request; otherwise
// the start fails with ErrRequestIDReused.
func StartSigned(ctx context.Context, c client.Client, queue, requestID string, req workflows.Request, sign *Signer) (string, error) {
	var txid string
	if requestID != "" {
		if !requestIDPattern.MatchString(requestID) {
			return "", fmt.Errorf("request id %q must be 1 to 128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit: %w", requestID, ErrBadRequestID)
		}
		req.RequestID = requestID
		txid = workflows.RequestTransactionID(queue, signerID(sign, req), requestID)
	} else {
		u, err := uuid.NewV7()
		if err != nil {
			return "", err
		}
		txid = u.String()
	}
	opts := client.StartWorkflowOptions{
		ID: txid, TaskQueue: queue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		// An existing id is an answer to check, not one to hand back.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    managerAttribute(queue),
	}
	in := workflows.ReleaseInput{Request: req}
	if sign != nil {
		in.Signature = sign.Sign(workflows.ReleaseStart(txid, in).Payload())
	}
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.ReleaseWorkflowName, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if requestID != "" && errors.As(err, &started) {
		if err := Genuine(ctx, c, txid, queue); err != nil {
			return "", fmt.Errorf("request id %q: %w", requestID, err)
		}
		return txid, sameRequest(ctx, c, txid, signerID(sign, req), req)
	}
	if err != nil {
		return "", fmt.Errorf("start release of %s: %w", req.Project, err)
	}
	return run.GetID(), nil
}

// ErrNotGenuine: a workflow under a transaction's id that is not a relman
// transaction of the manager asked: a workflow of another type, or one on
// another task queue, which relman's managers do not run.
var ErrNotGenuine = errors.New("not a relman transaction of this manager")

// Genuine checks that the workflow txid is a relman transaction run by
// the managers on queue: a transaction type on that task queue, where only
// relman's own workflow code answers. A workflow someone with namespace
// access started under the id (a request id is predictable) on a queue of
// their own could otherwise answer its queries with any status.
func Genuine(ctx context.Context, c client.Client, txid, queue string) error {
	desc, err := c.DescribeWorkflowExecution(ctx, txid, "")
	if err != nil {
		return fmt.Errorf("read transaction %s: %w", txid, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	typ, tq := info.GetType().GetName(), info.GetTaskQueue()
	switch {
	case !IsTransactionType(typ):
		return fmt.Errorf("%s is a %s workflow: %w", txid, typ, ErrNotGenuine)
	case tq != queue:
		return fmt.Errorf("%s runs on task queue %s, not on the manager's queue %s: another manager's (pass its --manager-queue), or someone with access to the Temporal namespace started it: %w", txid, tq, queue, ErrNotGenuine)
	}
	return nil
}

// sameRequestWait bounds how long a retry waits for the transaction its
// request id names to have been checked by a manager.
const sameRequestWait = config.DefaultSameRequestWait

// sameRequest checks that the transaction txid, which a request id named,
// was asked for by signer with the same request. It waits until a manager
// has checked who signed that transaction (its plan ran), so the answer
// rests on a verified signer, never on a claim.
func sameRequest(ctx context.Context, c client.Client, txid, signer string, req workflows.Request) error {
	ctx, cancel := context.WithTimeout(ctx, sameRequestWait)
	defer cancel()
	var d *workflows.Detail
	for {
		var err error
		d, err = Get(ctx, c, txid)
		if err == nil && (d.Signer != "" || d.Status.Final(d.Request.Action)) {
			break
		}
		if err != nil && !errors.Is(err, ErrNotYet) {
			return fmt.Errorf("read transaction %s of request id %q: %w", txid, req.RequestID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("transaction %s of request id %q has not been checked by a manager within %s; try again when a manager runs", txid, req.RequestID, sameRequestWait)
		case <-time.After(config.DefaultPollStep):
		}
	}
	switch {
	case d.Signer == "":
		return fmt.Errorf("request id %q names transaction %s, which was %s before a manager could tell who sent it (%s); send another request id: %w",
			req.RequestID, txid, d.Status, d.Reason, ErrRequestIDReused)
	case d.Signer != signer:
		return fmt.Errorf("request id %q names transaction %s, which was not started by you; send another request id: %w", req.RequestID, txid, ErrRequestIDReused)
	}
	if !workflows.SameRequest(d.Request, req) {
		return fmt.Errorf("request id %q was used for transaction %s, a different request (%s of %s%s from %s); send a new request id for a new request: %w",
			req.RequestID, txid, d.Request.Action, d.Request.Project, intoEnv(d.Request.Env), d.Request.Source, ErrRequestIDReused)
	}
	return nil
}

func intoEnv(env string) string {
	if env == "" {
		return ""
	}
	return " into " + env
}

// Wait polls the detail until the status is final, and returns it whole.
// Polling a query keeps working across manager restarts, unlike holding a
// result stream. While it polls, a large transaction's detail carries its
// installs' count by state (InstallPages), not the installs themselves.
func Wait(ctx context.Context, c client.Client, txid string, onChange func(*workflows.Detail)) (*workflows.Detail, error) {
	poll := func(ctx context.Context) (*workflows.Detail, error) {
		d, err := get(ctx, c, txid, false)
		if errors.Is(err, ErrNotYet) {
			return nil, nil
		}
		return d, err
	}
	whole := func(ctx context.Context) (*workflows.Detail, error) { return Get(ctx, c, txid) }
	return Follow(ctx, config.DefaultFollowEvery, poll, whole, onChange)
}

// Follow is the one loop of a client waiting for a transaction to end, on
// Temporal (Wait) or through the manager's API: it calls poll every tick,
// and onChange (when not nil) with each detail poll reads, until the status
// is final. A poll that reads no detail and no error (nothing to show yet,
// or a pause worth waiting out) waits for the next tick; a poll's error
// ends it, with the last detail read. A final detail that carries only its
// installs' count by state (InstallPages) is read again whole, by whole.
func Follow(ctx context.Context, every time.Duration, poll, whole func(context.Context) (*workflows.Detail, error), onChange func(*workflows.Detail)) (*workflows.Detail, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last *workflows.Detail
	for {
		d, err := poll(ctx)
		if err != nil {
			return last, err
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
				return whole(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
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

// Poll is Get for a client that polls (Wait, the gateway's watchers): a
// large transaction's installs stay their count by state (InstallPages),
// not read a page at a time.
func Poll(ctx context.Context, c client.Client, txid string) (*workflows.Detail, error) {
	return get(ctx, c, txid, false)
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
	if !IsTransactionType(info.GetType().GetName()) {
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
	return timeline(ctx, c, txid, "", nil)
}

// timeline is Timeline of one run (empty: the latest), which an archived
// history needs (records.go). aliases, when given, name the search
// attributes of an archived history (searchAttributeAliases).
func timeline(ctx context.Context, c client.Client, txid, run string, aliases map[string]string) ([]Step, error) {
	it := c.GetWorkflowHistory(ctx, txid, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	acts := map[int64]*scheduled{}
	// updates names each accepted update (approve, reject, cancel) by id.
	updates := map[string]string{}
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
				// Who asked is not here: the input holds only the name the
				// client claimed. The transaction records who the manager
				// authenticated (the requester search attribute, below).
				r := in.Request
				s.Detail = fmt.Sprintf("%s of %s from %s", r.Action, r.Project, r.Source)
				if r.Env != "" {
					s.Detail += " into " + r.Env
				}
			}
			out = append(out, s)
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			f := aliased(ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields(), aliases)
			var st, who string
			if p, ok := f[workflows.SAStatus]; ok {
				_ = dc.FromPayload(p, &st)
			}
			if p, ok := f[workflows.SARequester]; ok {
				_ = dc.FromPayload(p, &who)
			}
			switch {
			case st != "" && who != "":
				out = append(out, Step{Time: t, Event: "status " + st, Detail: "requested by " + who})
			case st != "":
				out = append(out, Step{Time: t, Event: "status " + st})
			case who != "":
				out = append(out, Step{Time: t, Event: "requester", Detail: "authenticated as " + who})
			}
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes()
			updates[a.GetAcceptedRequest().GetMeta().GetUpdateId()] = a.GetAcceptedRequest().GetInput().GetName()
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
			a := ev.GetWorkflowExecutionUpdateCompletedEventAttributes()
			name := updates[a.GetMeta().GetUpdateId()]
			if name == "" {
				name = "update"
			}
			st := Step{Time: t, Event: name}
			if f := a.GetOutcome().GetFailure(); f != nil {
				st.Event += " refused"
				st.Detail = f.GetMessage()
			} else if p := a.GetOutcome().GetSuccess().GetPayloads(); len(p) > 0 {
				var msg string
				if dc.FromPayload(p[0], &msg) == nil {
					st.Detail = msg
				}
			}
			out = append(out, st)
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
	// Manager is the manager queue it was started on; empty for one
	// started before relman recorded it.
	Manager string `json:"manager,omitempty"`
	// From is "record" for a transaction Temporal no longer has, listed
	// from its closed-transaction record (records.go).
	From string `json:"from,omitempty"`
}

// Filter narrows a list; empty fields match everything. Manager is a
// manager queue: transactions started before relman set RelmanManager carry
// none and are listed only without it.
type Filter struct {
	Project, Env, Status, Requester, Manager string
	Limit                                    int
}

// managerAttribute marks a transaction with the manager queue it starts on.
func managerAttribute(queue string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(temporal.NewSearchAttributeKeyKeyword(workflows.SAManager).ValueSet(queue))
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
		{workflows.SAManager, f.Manager, "manager queue"},
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
			for attr, dst := range map[string]*string{workflows.SAProject: &r.Project, workflows.SAEnv: &r.Env, workflows.SAStatus: &r.Status, workflows.SARequester: &r.Requester, workflows.SAManager: &r.Manager} {
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
