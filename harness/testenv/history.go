package testenv

import (
	"context"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/relman/relman/workflows"
)

// History reads the events of one run of a workflow (run "" for the
// latest).
func (e *Env) History(ctx context.Context, id, run string) (*historypb.History, error) {
	return History(ctx, e.Client, id, run)
}

// History reads the events of one run of a workflow through c.
func History(ctx context.Context, c client.Client, id, run string) (*historypb.History, error) {
	it := c.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// ChildIDs lists the workflow ids of the HostFanOut children a history
// started (not its closed-transaction recorder, which outlives it).
func ChildIDs(h *historypb.History) []string {
	var ids []string
	for _, ev := range h.GetEvents() {
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil && a.GetWorkflowType().GetName() == workflows.HostFanOutWorkflowName {
			ids = append(ids, a.GetWorkflowExecution().GetWorkflowId())
		}
	}
	return ids
}

// LargestPayload is the size in bytes of the largest payload anywhere in
// a history's events: inputs, results, failures' details, markers, queries'
// search attributes, headers.
func LargestPayload(h *historypb.History) int {
	largest := 0
	for _, ev := range h.GetEvents() {
		WalkPayloads(ev, func(p *commonpb.Payload) { largest = max(largest, proto.Size(p)) })
	}
	return largest
}

// WalkPayloads calls f with every Payload in m, however deep: lists, maps
// and nested messages.
func WalkPayloads(m proto.Message, f func(*commonpb.Payload)) {
	if p, ok := m.(*commonpb.Payload); ok {
		f(p)
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			if fd.Message() != nil {
				l := v.List()
				for i := range l.Len() {
					WalkPayloads(l.Get(i).Message().Interface(), f)
				}
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					WalkPayloads(mv.Message().Interface(), f)
					return true
				})
			}
		case fd.Message() != nil:
			WalkPayloads(v.Message().Interface(), f)
		}
		return true
	})
}
