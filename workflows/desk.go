package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Bounds of one run of a Desk. Temporal allows 2,000 updates a run (and
// suggests continuing as new before that), warns at 10,240 history events
// and lets one workflow hold 2,000 pending activities; a where over 1,000
// hosts alone schedules 1,000 activities and writes some 3,000 events.
// Variables only so that tests can make them small.
var (
	// maxDeskQuestions continues the desk as new after this many
	// questions, well before Temporal's 2,000 updates a run.
	maxDeskQuestions = 1000
	// maxDeskHistory continues it as new before its history gets long,
	// even when the server does not suggest it.
	maxDeskHistory = 8000
	// maxDeskActivities bounds the activities the desk's where questions
	// have pending together; a question that would go past it waits for
	// the others, and one with more hosts than that sends its calls out in
	// parts.
	maxDeskActivities = 1000
)

// DeskState is the Desk workflow's argument; it carries nothing across
// continue-as-new, as every question is answered afresh.
type DeskState struct{}

// Desk is a manager's front desk: it answers `relman plan` (update "plan":
// the Plan activity and the batches, as PlanOnly did), `relman where`
// (update "where": the hosts' live installs, as Where did) and reads of
// closed-transaction records (update "records", as Records did) without a
// workflow execution per question, so the Web UI's list holds
// transactions, not helpers. One Desk runs per manager (DeskID), started
// on demand by the first question (update-with-start), and continues as
// new before its history or its update count grows past what Temporal
// allows.
func Desk(ctx workflow.Context, _ DeskState) error {
	d := &desk{}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, PlanUpdate, d.plan,
		workflow.UpdateHandlerOptions{Validator: d.acceptPlan}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, WhereUpdate, d.where,
		workflow.UpdateHandlerOptions{Validator: d.acceptWhere}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, RecordsUpdate, d.records,
		workflow.UpdateHandlerOptions{Validator: d.acceptRecords}); err != nil {
		return err
	}
	return d.run(ctx)
}

// run is the main loop: it waits until the desk is tired, then turns new
// questions away (the client asks the next run), answers those taken and
// continues as new.
func (d *desk) run(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return d.tired(ctx) }); err != nil {
		return err
	}
	d.closing = true
	return continueAsNew(ctx, DeskWorkflowName, nil, func() (any, bool) { return DeskState{}, true })
}

type desk struct {
	questions int
	closing   bool
	// pending counts the activities where questions have scheduled and
	// not seen end.
	pending int
}

func (d *desk) tired(ctx workflow.Context) bool {
	return d.questions >= maxDeskQuestions || historyFull(ctx, maxDeskHistory)
}

func (d *desk) accept() error {
	if d.closing {
		return temporal.NewApplicationError("the manager's desk is handing over to its next run; ask again", ErrDeskHandingOver)
	}
	return nil
}

func (d *desk) acceptPlan(workflow.Context, PlanInput) error   { return d.accept() }
func (d *desk) acceptWhere(workflow.Context, WhereInput) error { return d.accept() }
func (d *desk) acceptRecords(workflow.Context, RecordsInput) error {
	return d.accept()
}

func (d *desk) records(ctx workflow.Context, in RecordsInput) (*RecordsResult, error) {
	d.questions++
	return readRecords(ctx, in)
}

func (d *desk) plan(ctx workflow.Context, in PlanInput) (*PlanOnlyResult, error) {
	d.questions++
	if in.Transaction == "" {
		// What a signature is bound to: the client names it before
		// signing; unsigned questions get the update's own id.
		in.Transaction = workflow.GetCurrentUpdateInfo(ctx).ID
	}
	// A plan's signature is a plan's, never a transaction's start: the
	// manager checks it against the PlanOnly name, so it cannot start a
	// release.
	in.Workflow = PlanOnlyWorkflowName
	return planOnly(ctx, in)
}

func (d *desk) where(ctx workflow.Context, in WhereInput) (WhereResult, error) {
	d.questions++
	return where(ctx, in, d.fanOut)
}

// fanOut is fanOut within maxDeskActivities: it waits until the calls fit
// beside the other questions' pending activities, and sends more calls
// than that in parts, one after the other.
func (d *desk) fanOut(ctx workflow.Context, opts workflow.ActivityOptions, calls []hostCall, done func(int, hostResult)) {
	for start := 0; start < len(calls); start += maxDeskActivities {
		part := calls[start:min(start+maxDeskActivities, len(calls))]
		n := len(part)
		if err := workflow.Await(ctx, func() bool { return d.pending+n <= maxDeskActivities }); err != nil {
			return
		}
		d.pending += n
		// Directly, never through HostFanOut children: their ids derive
		// from the workflow's, and questions asked at once would share them.
		fanOutDirect(ctx, opts, part, func(i int, f hostResult) {
			d.pending--
			done(start+i, f)
		})
	}
}
