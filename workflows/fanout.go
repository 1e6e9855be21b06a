package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
)

// What one fan-out holds. Temporal allows a workflow 2,000 pending
// activities and warns at 10,240 history events; every call to a host
// costs its workflow about three events and one pending activity. So a
// fan-out of at most maxDirectCalls calls schedules its activities itself,
// and a larger one goes through HostFanOut child workflows of at most
// maxDirectCalls calls each, which cost the transaction a handful of
// events per child whatever its size.
const maxDirectCalls = 200

// Fleet limits of one transaction, checked when it is planned
// (Plan.CheckLimits), so a request past them is rejected naming the limit
// instead of running into one of Temporal's halfway.
const (
	// MaxReleaseInstalls bounds the (host, named target) installs of one
	// release: its plan lists them in one payload (about 20 bytes plus the
	// host's name each) and its detail pages through them.
	MaxReleaseInstalls = 10000
	// MaxRolloutBatches bounds the batches of a rolling release: each
	// costs the release about a dozen history events (its child workflow,
	// its pause and their workflow tasks).
	MaxRolloutBatches = 500
)

// CheckLimits reports a plan past what one release holds, naming the limit
// and what to do instead.
func (p Plan) CheckLimits() error {
	n := 0
	for _, t := range p.Targets {
		n += len(p.Hosts[t])
	}
	if n > MaxReleaseInstalls {
		return fmt.Errorf("this release would make %d (host, named target) installs and one release holds at most %d (MaxReleaseInstalls); split the environment's hosts into several environments", n, MaxReleaseInstalls)
	}
	if p.Rollout.Strategy != rollout.StrategyRolling {
		return nil
	}
	hosts := p.hostList()
	if b := len(p.Rollout.Batches(hosts)); b > MaxRolloutBatches {
		least := (len(hosts) + MaxRolloutBatches - 1) / MaxRolloutBatches
		return fmt.Errorf("a rolling release goes through at most %d batches (MaxRolloutBatches) and %d hosts in batches of %s make %d; set a larger batch: at least %d hosts, or a share of %d%% or more",
			MaxRolloutBatches, len(hosts), p.Rollout.Batch, b, least, (100+MaxRolloutBatches-1)/MaxRolloutBatches)
	}
	return nil
}

// fanOutChildrenVersion marks transactions whose large fan-outs go through
// HostFanOut children; those started before schedule every activity
// themselves.
const fanOutChildrenVersion = "fan-out-children"

// hostCall is one activity on one host's own queue (HostQueue).
type hostCall struct {
	host     string
	activity string
	input    any
}

// hostResult is how one call ended: the activity's future, or the outcome
// a HostFanOut child brought back. Get decodes the result or returns the
// error as workflow.Future.Get does.
type hostResult interface {
	Get(ctx workflow.Context, valuePtr any) error
}

// viaChildren reports whether a transaction whose fan-outs make n calls in
// all sends them through HostFanOut children. Deciding once for all of a
// transaction's fan-outs (a rolling release makes one per batch) keeps its
// history bounded however small its batches are.
func viaChildren(ctx workflow.Context, n int) bool {
	if n <= maxDirectCalls {
		return false
	}
	// Only Release and Rollback runs from before the change may be open;
	// a Where lives for seconds (see queueScope).
	if t := workflow.GetInfo(ctx).WorkflowType.Name; t != ReleaseWorkflowName && t != RollbackWorkflowName {
		return true
	}
	return changeVersion(ctx, fanOutChildrenVersion) >= 1
}

// fanOut is the one way work goes out to hosts: installs, rollbacks and
// where-queries alike. It runs one activity per call on the call's host
// queue and hands each call's result to done as it completes, returning
// once every call has ended. opts are every call's activity options; the
// task queue is set per host. Calls go out in the order given (the order of
// the commands in the history, so callers keep it stable). A fan-out of
// more than maxDirectCalls goes through HostFanOut children named
// <workflow id>-<name>-<n>.
func fanOut(ctx workflow.Context, name string, opts workflow.ActivityOptions, calls []hostCall, done func(i int, r hostResult)) {
	fanOutVia(ctx, name, opts, calls, viaChildren(ctx, len(calls)), done)
}

// fanOutVia is fanOut with the choice of children made by the caller
// (viaChildren over the whole transaction).
func fanOutVia(ctx workflow.Context, name string, opts workflow.ActivityOptions, calls []hostCall, children bool, done func(i int, r hostResult)) {
	if !children {
		fanOutDirect(ctx, opts, calls, done)
		return
	}
	copts, err := newHostCallOptions(opts)
	parent := workflow.GetInfo(ctx).WorkflowExecution.ID
	sel := workflow.NewSelector(ctx)
	pending := 0
	for n, c := range chunk(len(calls), maxDirectCalls) {
		in := HostFanOutInput{Activity: calls[c[0]].activity, Options: copts}
		for _, call := range calls[c[0]:c[1]] {
			raw, merr := encodeJSON(call.input)
			if err == nil {
				err = merr
			}
			hc := HostFanOutCall{Host: call.host, Input: raw}
			if call.activity != in.Activity {
				hc.Activity = call.activity
			}
			in.Calls = append(in.Calls, hc)
		}
		if err != nil {
			// Options or an input a child cannot carry are a bug; they
			// fail the calls rather than the workflow task, so the
			// transaction still ends.
			for i := c[0]; i < c[1]; i++ {
				done(i, HostOutcome{Kind: outcomeError, Message: "fan-out: " + err.Error()})
			}
			continue
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:          fmt.Sprintf("%s-%s-%d", parent, name, n+1),
			WaitForCancellation: true,
		})
		pending++
		sel.AddFuture(workflow.ExecuteChildWorkflow(cctx, HostFanOutWorkflowName, in), func(f workflow.Future) {
			var res HostFanOutResult
			err := f.Get(ctx, &res)
			for i := c[0]; i < c[1]; i++ {
				switch {
				case err != nil:
					done(i, failedCall{err})
				case i-c[0] < len(res.Outcomes):
					done(i, res.Outcomes[i-c[0]])
				default:
					done(i, HostOutcome{Kind: outcomeError, Message: "fan-out: the child returned no outcome for this call"})
				}
			}
		})
	}
	for range pending {
		sel.Select(ctx)
	}
}

// fanOutDirect schedules every call's activity from this workflow.
func fanOutDirect(ctx workflow.Context, opts workflow.ActivityOptions, calls []hostCall, done func(i int, r hostResult)) {
	sel := workflow.NewSelector(ctx)
	for i, c := range calls {
		o := opts
		o.TaskQueue = HostQueue(queueScope(ctx), c.host)
		f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, o), c.activity, c.input)
		sel.AddFuture(f, func(f workflow.Future) { done(i, f) })
	}
	for range calls {
		sel.Select(ctx)
	}
}

// chunk splits n items into [start, end) ranges of at most size.
func chunk(n, size int) [][2]int {
	var out [][2]int
	for i := 0; i < n; i += size {
		out = append(out, [2]int{i, min(i+size, n)})
	}
	return out
}

// HostFanOutInput is one chunk of a fan-out: its calls and their activity
// options.
type HostFanOutInput struct {
	Activity string           `json:"activity"`
	Options  HostCallOptions  `json:"options"`
	Calls    []HostFanOutCall `json:"calls"`
}

// HostFanOutCall is one activity on one host. Input is the activity's
// argument as JSON.
type HostFanOutCall struct {
	Host     string          `json:"host"`
	Activity string          `json:"activity,omitempty"`
	Input    json.RawMessage `json:"input"`
}

// HostCallOptions are the activity options of a chunk's calls, as a child's
// input carries them.
type HostCallOptions struct {
	ScheduleToStart     time.Duration `json:"schedule_to_start,omitempty"`
	StartToClose        time.Duration `json:"start_to_close,omitempty"`
	Heartbeat           time.Duration `json:"heartbeat,omitempty"`
	WaitForCancellation bool          `json:"wait_for_cancellation,omitempty"`
	MaximumAttempts     int32         `json:"maximum_attempts,omitempty"`
	NonRetryable        []string      `json:"non_retryable,omitempty"`
	InitialInterval     time.Duration `json:"initial_interval,omitempty"`
	BackoffCoefficient  float64       `json:"backoff_coefficient,omitempty"`
	MaximumInterval     time.Duration `json:"maximum_interval,omitempty"`
}

func newHostCallOptions(o workflow.ActivityOptions) (HostCallOptions, error) {
	h := HostCallOptions{
		ScheduleToStart:     o.ScheduleToStartTimeout,
		StartToClose:        o.StartToCloseTimeout,
		Heartbeat:           o.HeartbeatTimeout,
		WaitForCancellation: o.WaitForCancellation,
	}
	if o.ScheduleToCloseTimeout != 0 {
		return h, errors.New("a schedule-to-close timeout does not go through HostFanOut children")
	}
	if p := o.RetryPolicy; p != nil {
		h.MaximumAttempts, h.NonRetryable = p.MaximumAttempts, p.NonRetryableErrorTypes
		h.InitialInterval, h.BackoffCoefficient, h.MaximumInterval = p.InitialInterval, p.BackoffCoefficient, p.MaximumInterval
	}
	return h, nil
}

func (h HostCallOptions) activityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ScheduleToStartTimeout: h.ScheduleToStart,
		StartToCloseTimeout:    h.StartToClose,
		HeartbeatTimeout:       h.Heartbeat,
		WaitForCancellation:    h.WaitForCancellation,
		RetryPolicy: &temporal.RetryPolicy{
			MaximumAttempts:        h.MaximumAttempts,
			NonRetryableErrorTypes: h.NonRetryable,
			InitialInterval:        h.InitialInterval,
			BackoffCoefficient:     h.BackoffCoefficient,
			MaximumInterval:        h.MaximumInterval,
		},
	}
}

// HostFanOutResult is how each call of a chunk ended, in the order of its
// calls.
type HostFanOutResult struct {
	Outcomes []HostOutcome `json:"outcomes"`
}

// Kinds of HostOutcome, in the order callers look at an error: cancelled,
// timed out (unreachable when the host never picked the call up), an
// application error, anything else.
const (
	outcomeCancelled   = "cancelled"
	outcomeTimeout     = "timeout"
	outcomeApplication = "application"
	outcomeError       = "error"
)

// maxOutcomeMessage caps an error message a child brings back, so a chunk's
// result stays small whatever a behavior prints.
const maxOutcomeMessage = 1024

// HostOutcome is how one call ended, as a child returns it: the activity's
// result (JSON), or what its error was. The transaction turns it back into
// the error the activity's future would have returned (Get).
type HostOutcome struct {
	Result json.RawMessage `json:"result,omitempty"`
	Kind   string          `json:"kind,omitempty"`
	// TimeoutType of a timeout (enumspb.TimeoutType).
	TimeoutType int32 `json:"timeout_type,omitempty"`
	// Message, Type, NonRetryable and Details of the application error
	// (the timeout's cause, when it had one).
	Message      string          `json:"message,omitempty"`
	Type         string          `json:"type,omitempty"`
	NonRetryable bool            `json:"non_retryable,omitempty"`
	Details      json.RawMessage `json:"details,omitempty"`
}

// Get decodes the call's result or returns its error, rebuilt with the
// types the activity's own error had, so callers read both alike.
func (o HostOutcome) Get(_ workflow.Context, valuePtr any) error {
	if err := o.err(); err != nil {
		return err
	}
	if valuePtr == nil || len(o.Result) == 0 {
		return nil
	}
	return decodeJSON(o.Result, valuePtr)
}

func (o HostOutcome) err() error {
	app := func() error {
		opts := temporal.ApplicationErrorOptions{NonRetryable: o.NonRetryable}
		if len(o.Details) > 0 {
			// Read back as a json.RawMessage (attemptsOf does).
			opts.Details = []any{o.Details}
		}
		return temporal.NewApplicationErrorWithOptions(o.Message, o.Type, opts)
	}
	switch o.Kind {
	case "":
		return nil
	case outcomeCancelled:
		return temporal.NewCanceledError()
	case outcomeTimeout:
		var cause error
		if o.Type != "" || o.Message != "" {
			cause = app()
		}
		return temporal.NewTimeoutError(enumspb.TimeoutType(o.TimeoutType), cause)
	case outcomeApplication:
		return app()
	}
	return errors.New(o.Message)
}

// outcomeOf records how a call ended.
func outcomeOf(ctx workflow.Context, r hostResult) HostOutcome {
	var raw json.RawMessage
	err := r.Get(ctx, &raw)
	if err == nil {
		return HostOutcome{Result: raw}
	}
	var o HostOutcome
	setApp := func(err error) {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			o.Message, o.Type, o.NonRetryable = capMessage(app.Message()), app.Type(), app.NonRetryable()
			var d json.RawMessage
			if app.HasDetails() && app.Details(&d) == nil {
				o.Details = d
			}
		}
	}
	var te *temporal.TimeoutError
	switch {
	case temporal.IsCanceledError(err):
		o.Kind = outcomeCancelled
	case errors.As(err, &te):
		o.Kind, o.TimeoutType = outcomeTimeout, int32(te.TimeoutType())
		setApp(te.Unwrap())
	default:
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			o.Kind = outcomeApplication
			setApp(err)
		} else {
			o.Kind, o.Message = outcomeError, capMessage(err.Error())
		}
	}
	return o
}

func capMessage(s string) string {
	if len(s) <= maxOutcomeMessage {
		return s
	}
	return s[:maxOutcomeMessage] + "…"
}

// failedCall is a call whose child failed as a whole.
type failedCall struct{ err error }

func (f failedCall) Get(workflow.Context, any) error { return f.err }

// HostFanOut runs one chunk of a transaction's fan-out to hosts, as its
// child: one activity per call on the call's host queue, at most
// maxDirectCalls of them, so neither it nor its parent comes near
// Temporal's per-workflow limits. It returns how every call ended, also
// when it is cancelled (its activities are then cancelled too), and fails
// only on a bug.
func HostFanOut(ctx workflow.Context, in HostFanOutInput) (*HostFanOutResult, error) {
	if len(in.Calls) > maxDirectCalls {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("a HostFanOut takes at most %d calls, not %d", maxDirectCalls, len(in.Calls)), ErrInvalidRequest, nil)
	}
	calls := make([]hostCall, len(in.Calls))
	for i, c := range in.Calls {
		act := c.Activity
		if act == "" {
			act = in.Activity
		}
		calls[i] = hostCall{host: c.Host, activity: act, input: c.Input}
	}
	res := &HostFanOutResult{Outcomes: make([]HostOutcome, len(calls))}
	fanOutDirect(ctx, in.Options.activityOptions(), calls, func(i int, r hostResult) {
		res.Outcomes[i] = outcomeOf(ctx, r)
	})
	return res, nil
}

// encodeJSON and decodeJSON carry activity inputs, results and error
// details through HostFanOut children as the SDK's JSON converter does.
// encoding/json reads and writes the same bytes on every replay; only its
// cache of types is what workflowcheck cannot see through.
//
//workflowcheck:ignore
func encodeJSON(v any) (json.RawMessage, error) { return json.Marshal(v) }

//workflowcheck:ignore
func decodeJSON(raw json.RawMessage, v any) error { return json.Unmarshal(raw, v) }

// isUnreachable: the host did not pick up the activity in time.
func isUnreachable(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// joinCapped joins items with sep, naming at most limit of them and
// counting the rest, so a message about a thousand hosts stays a sentence.
func joinCapped(items []string, sep string, limit int) string {
	if len(items) <= limit {
		return strings.Join(items, sep)
	}
	return strings.Join(items[:limit], sep) + fmt.Sprintf("%s... and %d more", sep, len(items)-limit)
}
