package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/relman/relman/workflows"
)

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

func (a *app) historyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "history TXID",
		Short: "Print a transaction's timeline from its event history: what ran where, attempts, durations, errors",
		Example: `  relman history 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10
  relman history 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			steps, err := Timeline(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(steps)
			}
			if len(steps) == 0 {
				return nil
			}
			t0 := steps[0].Time
			tw := tabwriter.NewWriter(a.opts.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\t+SECONDS\tEVENT\tACTIVITY\tQUEUE\tWORKER\tATTEMPT\tTOOK\tDETAIL")
			for _, s := range steps {
				att, took := "", ""
				if s.Attempt > 0 {
					att = fmt.Sprint(s.Attempt)
				}
				if s.Took > 0 {
					took = s.Took.Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Time.Local().Format("15:04:05.000"),
					s.Time.Sub(t0).Seconds(), s.Event, s.Activity, s.Queue, s.Worker, att, took, s.Detail)
			}
			return tw.Flush()
		},
	}
}

// Timeline reads a transaction's event history and turns it into steps.
func Timeline(ctx context.Context, c client.Client, txid string) ([]Step, error) {
	it := c.GetWorkflowHistory(ctx, txid, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	acts := map[int64]*scheduled{}
	var out []Step
	dc := converter.GetDefaultDataConverter()
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("no transaction %s in this namespace; find ids with `relman list`", txid)
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
