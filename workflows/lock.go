package workflows

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Defaults of a Lock workflow.
const (
	DefaultLockCheck = time.Minute
	DefaultLockIdle  = 10 * time.Minute
	// maxLockHistory continues the lock as new before its history grows
	// long, even when the server does not suggest it.
	maxLockHistory = 5000
)

// Lock is the mutex of one (environment, named target), id LockID(env,
// target): one release installs there at a time. It follows the mutex
// pattern of the Temporal samples: a release asks with a signal (sent with
// signal-with-start by the RequestLock activity, so no bootstrap step
// exists), the lock answers with a signal (granted, waiting behind a
// holder, or refused), and the holder gives it back with a release signal
// when it ends, however it ends. A holder that closes without giving it
// back (terminated, timed out) is found by a check every CheckEvery, so
// the lock is held by a workflow, never by a process that may crash.
// Unheld for IdleFor, the workflow ends; the next request starts it again.
func Lock(ctx workflow.Context, st LockState) error {
	logger := workflow.GetLogger(ctx)
	check := orDefault(st.CheckEvery, DefaultLockCheck)
	idle := orDefault(st.IdleFor, DefaultLockIdle)
	requests := workflow.GetSignalChannel(ctx, LockRequestSignal)
	releases := workflow.GetSignalChannel(ctx, LockReleaseSignal)
	if err := workflow.SetQueryHandler(ctx, LockQuery, func() (LockState, error) { return st, nil }); err != nil {
		return err
	}
	lockID := workflow.GetInfo(ctx).WorkflowExecution.ID
	answer := func(to string, a LockAnswer) bool {
		a.Lock = lockID
		err := workflow.SignalExternalWorkflow(ctx, to, "", LockAnswerSignal, a).Get(ctx, nil)
		if err != nil {
			// The release has closed: it no longer wants the lock.
			logger.Info("lock answer not delivered", "transaction", to, "error", err)
		}
		return err == nil
	}
	grantNext := func() {
		for st.Holder == "" && len(st.Queue) > 0 {
			next := st.Queue[0]
			st.Queue = st.Queue[1:]
			if answer(next, LockAnswer{Granted: true}) {
				st.Holder = next
				logger.Info("lock granted", "transaction", next)
			}
		}
	}
	onRequest := func(req LockRequest) {
		switch {
		case req.Transaction == "":
		case req.Transaction == st.Holder:
			answer(req.Transaction, LockAnswer{Granted: true})
		case st.Holder == "" && len(st.Queue) == 0:
			if answer(req.Transaction, LockAnswer{Granted: true}) {
				st.Holder = req.Transaction
				logger.Info("lock granted", "transaction", req.Transaction)
			}
		case slices.Contains(st.Queue, req.Transaction):
			answer(req.Transaction, LockAnswer{Holder: st.Holder, Position: slices.Index(st.Queue, req.Transaction) + 1})
		case req.Refuse:
			answer(req.Transaction, LockAnswer{Refused: true, Holder: st.Holder})
		default:
			st.Queue = append(st.Queue, req.Transaction)
			answer(req.Transaction, LockAnswer{Holder: st.Holder, Position: len(st.Queue)})
		}
	}
	onRelease := func(rel LockRelease) {
		if rel.Transaction == st.Holder {
			st.Holder = ""
			logger.Info("lock released", "transaction", rel.Transaction)
			return
		}
		st.Queue = slices.DeleteFunc(st.Queue, func(t string) bool { return t == rel.Transaction })
	}
	// drain handles the signals already delivered, before the workflow
	// ends or continues as new, so none is lost; it reports whether any was.
	drain := func() bool {
		got := false
		for {
			var req LockRequest
			if !requests.ReceiveAsync(&req) {
				break
			}
			onRequest(req)
			got = true
		}
		for {
			var rel LockRelease
			if !releases.ReceiveAsync(&rel) {
				break
			}
			onRelease(rel)
			got = true
		}
		return got
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	for {
		grantNext()
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > maxLockHistory {
			if !drain() {
				return workflow.NewContinueAsNewError(ctx, LockWorkflowName, st)
			}
			continue
		}
		tctx, cancelTimer := workflow.WithCancel(ctx)
		timedOut := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(requests, func(c workflow.ReceiveChannel, _ bool) {
			var req LockRequest
			c.Receive(ctx, &req)
			onRequest(req)
		})
		sel.AddReceive(releases, func(c workflow.ReceiveChannel, _ bool) {
			var rel LockRelease
			c.Receive(ctx, &rel)
			onRelease(rel)
		})
		wait := idle
		if st.Holder != "" {
			wait = check
		}
		sel.AddFuture(workflow.NewTimer(tctx, wait), func(f workflow.Future) {
			timedOut = f.Get(tctx, nil) == nil
		})
		sel.Select(ctx)
		cancelTimer()
		if !timedOut {
			continue
		}
		if st.Holder == "" {
			if len(st.Queue) == 0 && !drain() {
				logger.Info("lock idle; ending", "lock", lockID)
				return nil
			}
			continue
		}
		var open bool
		if err := workflow.ExecuteActivity(actx, LockHolderOpenActivity, st.Holder).Get(ctx, &open); err != nil {
			logger.Warn("could not check the lock's holder; keeping it", "holder", st.Holder, "error", err)
			continue
		}
		if !open {
			logger.Warn(fmt.Sprintf("holder %s closed without releasing the lock; releasing it", st.Holder))
			st.Holder = ""
		}
	}
}
