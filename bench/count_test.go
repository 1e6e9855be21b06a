package main

import (
	"context"
	"sync/atomic"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// payload is a JSON "abc": 31 bytes as a proto (the metadata entry
// encoding=json/plain is 24, the data 7).
func payload() *commonpb.Payloads {
	return &commonpb.Payloads{Payloads: []*commonpb.Payload{{
		Metadata: map[string][]byte{"encoding": []byte("json/plain")},
		Data:     []byte(`"abc"`),
	}}}
}

// handMade is a history with one of each kind of event cloudActions
// counts or must skip, and the actions it must find.
func handMade() ([]*historypb.HistoryEvent, map[string]int) {
	var evs []*historypb.HistoryEvent
	ev := func(t enumspb.EventType, set func(*historypb.HistoryEvent)) {
		e := &historypb.HistoryEvent{EventId: int64(len(evs) + 1), EventType: t}
		if set != nil {
			set(e)
		}
		evs = append(evs, e)
	}
	marker := func(name string) {
		ev(enumspb.EVENT_TYPE_MARKER_RECORDED, func(e *historypb.HistoryEvent) {
			e.Attributes = &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{MarkerName: name}}
		})
	}
	task := func() {
		ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, nil)
		ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, nil)
		ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, nil)
	}
	ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, func(e *historypb.HistoryEvent) {
		e.Attributes = &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: payload()}}
	})
	task()
	// Two local activities and a version marker in one task: one action.
	marker(markerLocalActivity)
	marker(markerLocalActivity)
	marker(markerVersion)
	marker(markerSideEffect)
	ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, nil)
	ev(enumspb.EVENT_TYPE_TIMER_STARTED, nil)
	ev(enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, nil)
	ev(enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, nil)
	ev(enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, nil)
	// The activity's third attempt started: two retries.
	ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED, func(e *historypb.HistoryEvent) {
		e.Attributes = &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{Attempt: 3}}
	})
	ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, nil)
	ev(enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, nil)
	ev(enumspb.EVENT_TYPE_TIMER_FIRED, nil)
	ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, func(e *historypb.HistoryEvent) {
		e.Attributes = &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{Input: payload()}}
	})
	ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, nil)
	task()
	// A local activity in a later task: one more action.
	marker(markerLocalActivity)
	ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, nil)
	ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, nil)
	return evs, map[string]int{
		"workflow started":                     1,
		"local activities (per workflow task)": 2,
		"side effect":                          1,
		"activity":                             1,
		"activity retry":                       2,
		"timer":                                1,
		"search-attribute upsert":              1,
		"child workflow started":               1,
		"signal":                               1,
		"update":                               1,
	}
}

func TestCloudActionsOfAHandMadeHistory(t *testing.T) {
	evs, want := handMade()
	n, kinds := cloudActions(evs)
	if n != 12 {
		t.Errorf("actions: got %d, want 12 (by kind %v)", n, kinds)
	}
	for k, v := range want {
		if kinds[k] != v {
			t.Errorf("%s: got %d, want %d", k, kinds[k], v)
		}
	}
	for k := range kinds {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected kind %s: %d", k, kinds[k])
		}
	}
	var w work
	w.add(evs)
	if w.executions != 1 || w.events != len(evs) || w.actions != 12 || w.payload != 62 {
		t.Errorf("work: got %d executions, %d events, %d actions, %d payload bytes; want 1, %d, 12, 62", w.executions, w.events, w.actions, w.payload, len(evs))
	}
}

// A child's start is counted in its parent, not again in its own history.
func TestCloudActionsChildStartCountedOnce(t *testing.T) {
	child := []*historypb.HistoryEvent{{EventId: 1, EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			ParentWorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: "parent"}}}}}
	if n, kinds := cloudActions(child); n != 0 {
		t.Errorf("a child's own start: got %d actions (%v), want 0", n, kinds)
	}
	var w work
	w.add(child)
	if w.executions != 1 {
		t.Errorf("executions: got %d, want 1", w.executions)
	}
}

// Row 7's floor reaches every host, through children of at most
// fleetFloorChunk hosts past that many.
func TestFleetFloorChunks(t *testing.T) {
	defer func(n int) { fleetFloorChunk = n }(fleetFloorChunk)
	fleetFloorChunk = 4
	for _, hosts := range []int{3, 4, 11} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		env.RegisterWorkflowWithOptions(fleetFloorChunkWorkflow, workflow.RegisterOptions{Name: fleetFloorChunkName})
		env.RegisterActivityWithOptions(floorNoop, activity.RegisterOptions{Name: floorActivityName})
		var calls, children atomic.Int64
		env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { calls.Add(1) })
		env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) { children.Add(1) })
		env.ExecuteWorkflow(fleetFloorWorkflow, hosts)
		if err := env.GetWorkflowError(); err != nil {
			t.Fatalf("%d hosts: %v", hosts, err)
		}
		wantChildren := 0
		if hosts > fleetFloorChunk {
			wantChildren = (hosts + fleetFloorChunk - 1) / fleetFloorChunk
		}
		if calls.Load() != int64(hosts+1) || children.Load() != int64(wantChildren) {
			t.Errorf("%d hosts: %d activities and %d children, want %d and %d", hosts, calls.Load(), children.Load(), hosts+1, wantChildren)
		}
	}
}
