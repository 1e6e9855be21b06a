package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/workflows"
)

// work is the Temporal server work one release (or one floor run) caused,
// counted from the histories of every workflow execution it started or
// wrote to (see countRelease).
type work struct {
	counted    bool
	executions int            // workflow executions (runs) started
	events     int            // history events
	actions    int            // Temporal Cloud billable actions seen in history (cloudActions)
	byKind     map[string]int // actions by kind
	payload    int64          // bytes of every Payload in those events
	// queries and heartbeats are not in any history: the dev server's
	// frontend request counters over the release's window (-1 when the
	// server's metrics could not be read). They are added to total.
	queries, heartbeats int
}

// total is the billable actions with the queries and heartbeats the
// server saw.
func (w work) total() int { return w.actions + max(w.queries, 0) + max(w.heartbeats, 0) }

func (w *work) add(events []*historypb.HistoryEvent) {
	n, kinds := cloudActions(events)
	w.actions += n
	if w.byKind == nil {
		w.byKind = map[string]int{}
	}
	for k, v := range kinds {
		w.byKind[k] += v
	}
	w.events += len(events)
	for _, ev := range events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
			w.executions++
		}
		w.payload += payloadBytes(ev)
	}
}

// Marker names of the Go SDK (internal/internal_decision_state_machine.go).
const (
	markerLocalActivity     = "LocalActivity"
	markerSideEffect        = "SideEffect"
	markerMutableSideEffect = "MutableSideEffect"
	markerVersion           = "Version"
)

// cloudActionPerEvent is the table of cloudActions: how many Temporal Cloud
// actions one history event of a type is, as Temporal Cloud's Actions page
// defines them (docs.temporal.io/cloud/actions), read for what a history
// shows. Event types not listed are no action (workflow tasks, activity
// started/completed, timers fired, child completions, cancellations...).
// The events counted with a rule of their own are in cloudActions.
var cloudActionPerEvent = map[enumspb.EventType]struct {
	n    int
	kind string
}{
	// "Workflow started": by a client, by continue-as-new (the new run's
	// started event), by signal-with-start or update-with-start (plus the
	// signal or the update). A child's start is counted in its parent
	// (below), so a child's own started event is not counted again.
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: {1, "workflow started"},
	// "Child Workflow started": counted in the parent, once started.
	enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: {1, "child workflow started"},
	// "Activity started or retried": one per activity scheduled; its
	// retries are counted from the started event's attempt (cloudActions).
	enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {1, "activity"},
	// "Timer started", including the SDK's implicit ones (AwaitWithTimeout).
	enumspb.EVENT_TYPE_TIMER_STARTED: {1, "timer"},
	// "Signal sent", from a client, another workflow (its
	// SignalExternalWorkflowExecutionInitiated is not counted again) or
	// signal-with-start: counted where it is received.
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: {1, "signal"},
	// "Update accepted" (a rejected update writes no event: not seen).
	enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: {1, "update"},
	// "Search Attribute upsert requested": one per upsert command,
	// however many attributes it sets.
	enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {1, "search-attribute upsert"},
	// "Nexus operation scheduled" (relman uses none).
	enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED: {1, "nexus operation"},
}

// cloudActions counts the Temporal Cloud billable actions of a run of
// history events (one workflow's history, or a window of one), and by
// kind. The rules beyond cloudActionPerEvent:
//
//   - A workflow started as a child is not counted in its own history: its
//     parent's ChildWorkflowExecutionStarted counted it.
//   - Each activity retry is one more action: the attempt number of its
//     ActivityTaskStarted event (written once, for the last attempt) less 1.
//   - Local activities: Cloud counts the local activities a workflow task
//     ran as one action, whatever their number (its Actions page: "Local
//     Activities associated with one Workflow Task count as one Action");
//     a retry that goes past a workflow task, in a later task, counts again.
//     So one action per workflow task whose commands record LocalActivity
//     markers: markers are grouped by the WorkflowTaskCompleted before them.
//   - Markers: SideEffect is one action ("Side Effect recorded"), a
//     MutableSideEffect marker one (the Go SDK writes it only when its value
//     changes, which is when Cloud counts it), a Version marker
//     (GetVersion) none.
//   - Continue-as-new is counted at the new run's WorkflowExecutionStarted,
//     when that run is counted.
//
// Not in any history, so not counted here: queries (an action when a
// worker answers one), activity heartbeats that reach the server (the SDK
// throttles them), rejected updates, and workflow resets. countRelease adds
// the queries and heartbeats from the server's request counters.
func cloudActions(events []*historypb.HistoryEvent) (int, map[string]int) {
	kinds := map[string]int{}
	add := func(kind string, n int) {
		if n > 0 {
			kinds[kind] += n
		}
	}
	lastTask := int64(-1) // the WorkflowTaskCompleted before the current event
	laTask := int64(-2)   // the task whose local activities were last counted
	for _, ev := range events {
		t := ev.GetEventType()
		switch t {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			lastTask = ev.GetEventId()
			continue
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			if ev.GetWorkflowExecutionStartedEventAttributes().GetParentWorkflowExecution() != nil {
				continue
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			add("activity retry", int(ev.GetActivityTaskStartedEventAttributes().GetAttempt())-1)
			continue
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			switch ev.GetMarkerRecordedEventAttributes().GetMarkerName() {
			case markerLocalActivity:
				if laTask != lastTask {
					laTask = lastTask
					add("local activities (per workflow task)", 1)
				}
			case markerSideEffect, markerMutableSideEffect:
				add("side effect", 1)
			}
			continue
		}
		if a, ok := cloudActionPerEvent[t]; ok {
			add(a.kind, a.n)
		}
	}
	n := 0
	for _, v := range kinds {
		n += v
	}
	return n, kinds
}

// payloadBytes is the size of every Payload in an event: inputs, results,
// signal and update arguments, markers' details, memo, search attributes,
// headers, failures' details (proto size: data and metadata).
func payloadBytes(ev *historypb.HistoryEvent) int64 {
	var n int64
	testenv.WalkPayloads(ev, func(p *commonpb.Payload) { n += int64(proto.Size(p)) })
	return n
}

// events is one workflow run's history.
func events(ctx context.Context, c client.Client, id, run string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// addTree counts a workflow's history and, recursively, every child it
// started.
func (w *work) addTree(ctx context.Context, c client.Client, id, run string) error {
	evs, err := events(ctx, c, id, run)
	if err != nil {
		return err
	}
	w.add(evs)
	for _, ev := range evs {
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			if err := w.addTree(ctx, c, a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()); err != nil {
				return err
			}
		}
	}
	return nil
}

// counter reads the dev server's frontend request counters (its
// Prometheus endpoint, --metrics-port): the queries and activity
// heartbeats no history shows.
type counter struct{ addr string }

// freeMetricsPort picks a free port for the dev servers' metrics; "" when
// the caller passed --metrics-port already or none is free.
func freeMetricsPort(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "--metrics-port") {
			return ""
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// requests is the frontend's count of requests of the default namespace
// by operation; nil when the endpoint cannot be read.
func (m counter) requests(ctx context.Context) map[string]float64 {
	if m.addr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.addr+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "service_requests{") || !strings.Contains(l, `service_name="frontend"`) || !strings.Contains(l, `namespace="default"`) {
			continue
		}
		i := strings.Index(l, `operation="`)
		j := strings.LastIndexByte(l, ' ')
		if i < 0 || j < 0 {
			continue
		}
		op := l[i+len(`operation="`):]
		op = op[:strings.IndexByte(op, '"')]
		v, err := strconv.ParseFloat(l[j+1:], 64)
		if err == nil {
			out[op] += v
		}
	}
	return out
}

// settled reads the counters until two readings a flush apart agree on
// the operations counted: the server publishes its counters about once a
// second, so a reading taken at once would miss the last second's
// requests (and give them to the next window). Nil when unreadable.
func (m counter) settled(ctx context.Context) map[string]float64 {
	last := m.requests(ctx)
	for range 5 {
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(1100 * time.Millisecond):
		}
		now := m.requests(ctx)
		if now != nil && slices.Equal(countedOps(now), countedOps(last)) {
			return now
		}
		last = now
	}
	return last
}

var queryOps, heartbeatOps = []string{"QueryWorkflow"}, []string{"RecordActivityTaskHeartbeat", "RecordActivityTaskHeartbeatById"}

func countedOps(r map[string]float64) []float64 {
	var out []float64
	for _, op := range append(slices.Clone(queryOps), heartbeatOps...) {
		out = append(out, r[op])
	}
	return out
}

// delta sets w's queries and heartbeats from two readings.
func (w *work) delta(from, to map[string]float64) {
	if from == nil || to == nil {
		w.queries, w.heartbeats = -1, -1
		return
	}
	d := func(ops ...string) int {
		n := 0.0
		for _, op := range ops {
			n += to[op] - from[op]
		}
		return int(n)
	}
	w.queries = d(queryOps...)
	w.heartbeats = d(heartbeatOps...)
}

// countRelease runs one relman release into env and counts the server work
// it caused: the Release workflow's history and its children's (HostFanOut
// chunks), its closed-transaction recorder (a workflow of its own, started
// by the manager, waited for), and the events its target's Lock workflow
// wrote while serving it (the lock is a long-lived entity: the events of
// its current run from the release's start until the recorder has ended,
// so the release must be the only one into env then: its update, its
// release signal, the timers and tasks around them, and the lock's start
// when this release started it). The plan's registry read writes no
// history (queries); they and heartbeats come from the server's counters
// over the same window.
func (b *bench) countRelease(ctx context.Context, s *server, project, env, target string) (work, error) {
	w := work{counted: true}
	m := counter{b.metrics}
	m0 := m.settled(ctx)
	t0 := time.Now()
	_, det, err := s.release(ctx, project, env, false)
	if err != nil {
		return w, err
	}
	run := s.c.GetWorkflow(ctx, det.Transaction, "").GetRunID()
	rec := run + workflows.RecordIDSuffix
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = s.c.GetWorkflow(wctx, rec, "").Get(wctx, nil)
	cancel()
	// A manager without records (-no-records) starts no recorder.
	var nf *serviceerror.NotFound
	recorded := !errors.As(err, &nf)
	if err != nil && recorded {
		return w, fmt.Errorf("the recorder of %s: %w", det.Transaction, err)
	}
	if err := w.addTree(ctx, s.c, det.Transaction, run); err != nil {
		return w, err
	}
	if recorded {
		if err := w.addTree(ctx, s.c, rec, ""); err != nil {
			return w, err
		}
	}
	lock, err := events(ctx, s.c, workflows.LockID(workflows.DefaultManagerQueue, env, target), "")
	if err != nil {
		return w, err
	}
	var window []*historypb.HistoryEvent
	for _, ev := range lock {
		if !ev.GetEventTime().AsTime().Before(t0) {
			window = append(window, ev)
		}
	}
	w.add(window)
	w.delta(m0, m.settled(ctx))
	return w, nil
}

// countFloor runs one floor workflow (run returns its id) and counts its
// history and its children's.
func (b *bench) countFloor(ctx context.Context, s *server, run func(context.Context) (time.Duration, string, error)) (work, error) {
	w := work{counted: true}
	m := counter{b.metrics}
	m0 := m.settled(ctx)
	_, id, err := run(ctx)
	if err != nil {
		return w, err
	}
	if err := w.addTree(ctx, s.c, id, ""); err != nil {
		return w, err
	}
	w.delta(m0, m.settled(ctx))
	return w, nil
}

// workRow is the server work of one release of a row, relman and floor.
type workRow struct {
	id, what   string
	rel, floor work
}

func (r *results) workRows() []workRow {
	var out []workRow
	for _, x := range []struct {
		id string
		o  orchOut
	}{{"1", r.orchMem}, {"1u", r.orchFast}, {"5", r.orchSQL}} {
		if x.o.relWork.counted {
			out = append(out, workRow{x.id, fmt.Sprintf("no-op release, 3 hosts, %s", x.o.server), x.o.relWork, x.o.floorWork})
		}
	}
	return append(out, r.fleet.workRows()...)
}

func (f fleetOut) workRows() []workRow {
	var out []workRow
	for _, n := range f.counts {
		if f.relWork[n].counted {
			out = append(out, workRow{"7", fmt.Sprintf("no-op release to %d host(s), fleet", n), f.relWork[n], f.floorWork[n]})
		}
	}
	return out
}

func intOr(n int) string {
	if n < 0 {
		return "?"
	}
	return strconv.Itoa(n)
}

// workCells are a work row's cells: each figure as relman / floor, and the
// ratio of the billable actions.
func (r workRow) cells() []string {
	pair := func(a, b string) string { return a + " / " + b }
	return []string{r.id, r.what,
		pair(strconv.Itoa(r.rel.executions), strconv.Itoa(r.floor.executions)),
		pair(strconv.Itoa(r.rel.events), strconv.Itoa(r.floor.events)),
		pair(strconv.Itoa(r.rel.total()), strconv.Itoa(r.floor.total())),
		fmt.Sprintf("%.2f", float64(r.rel.total())/float64(max(r.floor.total(), 1))),
		pair(strconv.FormatInt(r.rel.payload, 10), strconv.FormatInt(r.floor.payload, 10)),
		pair(intOr(r.rel.queries), intOr(r.floor.queries)),
		pair(intOr(r.rel.heartbeats), intOr(r.floor.heartbeats)),
	}
}

var workHeader = []string{"row", "server work per release", "executions started", "history events", "Cloud actions", "actions ratio", "payload bytes", "queries", "heartbeats"}

func printWork(w io.Writer, rows []workRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nserver work per release, relman / floor:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(workHeader, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	tw.Flush()
	for _, r := range rows {
		fmt.Fprintf(w, "row %s, %s: actions by kind: relman %s; floor %s\n", r.id, r.what, kindsLine(r.rel), kindsLine(r.floor))
	}
}

// kindsLine is a work's actions by kind, largest first.
func kindsLine(w work) string {
	ks := slices.Sorted(maps.Keys(w.byKind))
	slices.SortStableFunc(ks, func(a, b string) int { return w.byKind[b] - w.byKind[a] })
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d %s", w.byKind[k], k))
	}
	if w.queries > 0 {
		parts = append(parts, fmt.Sprintf("%d queries", w.queries))
	}
	if w.heartbeats > 0 {
		parts = append(parts, fmt.Sprintf("%d heartbeats", w.heartbeats))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// workMarkdown is the work table in Markdown.
func workMarkdown(rows []workRow) string {
	if len(rows) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("| " + strings.Join(workHeader, " | ") + " |\n|" + strings.Repeat(" --- |", len(workHeader)) + "\n")
	for _, r := range rows {
		sb.WriteString("| " + strings.Join(r.cells(), " | ") + " |\n")
	}
	sb.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "- Row %s, %s: actions by kind: relman %s; floor %s.\n", r.id, r.what, kindsLine(r.rel), kindsLine(r.floor))
	}
	return sb.String()
}

// workText explains the server-work table in BENCHMARKS.md.
const workText = `What one release costs the Temporal server, relman / its floor, counted after each row's timed
runs from one more release and one more floor run of the same shape (bench/count.go). Executions
started: the workflow runs whose history holds a WorkflowExecutionStarted event among those
counted. History events and payload bytes (every Payload in those events: inputs, results,
signal and update arguments, markers, memo, search attributes, headers, failure details; proto
size) over: the Release workflow and its HostFanOut children, the transaction's recorder
(RecordTransaction, started by the manager and waited for) and the events the target's Lock
workflow wrote from the release's start until its recorder ended (a long-lived entity: its start
counts only when the release started it). The floor: its workflow and its children. Cloud actions
follow Temporal Cloud's Actions page, one function (cloudActions) with one table: a workflow
started (by a client, continue-as-new, signal- or update-with-start; a child counted once, in its
parent), each activity scheduled and each retry (the started event's attempt), each timer started,
signal received, update accepted and search-attribute upsert, the local activities of one
workflow task as one action, side-effect markers one, version markers none. Queries and activity
heartbeats are no history event: they come from the dev server's frontend request counters
(QueryWorkflow, RecordActivityTaskHeartbeat) over the same window and are added to the actions;
"?" when the counters could not be read. Rejected updates and resets are not seen.

`
