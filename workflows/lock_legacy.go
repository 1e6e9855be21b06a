package workflows

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// The Lock's legacy paths, and the transactions' side of them, kept only so that runs already open replay and
// finish. A new run never takes them as its own: transactions since
// lockUpdateVersion (on every transaction of baselineVersion) ask with the
// AcquireLock update, never the request signal, and Lock runs since
// lockCarryVersion and lockSupersedeAsyncVersion neither drain nor answer a
// superseded release synchronously. Each goes once no open run can need
// it (README.md, "Retiring a version"): the request signal with the last
// open transaction from before lockUpdateVersion, drain with the last Lock
// run from before lockCarryVersion, answerSync with the last from before
// lockSupersedeAsyncVersion.

// bySignal answers a request that came as a signal (RequestLockActivity,
// transactions from before lockUpdateVersion) with a signal.
func (l *lock) bySignal(ctx workflow.Context, req LockRequest) {
	l.onRequest(ctx, req, func(a LockAnswer) bool { return l.answer(ctx, req.Transaction, a) })
}

// answerSync tells a superseded release and waits for the delivery: runs
// from before lockSupersedeAsyncVersion.
func (l *lock) answerSync(ctx workflow.Context, to string, a LockAnswer) {
	l.answer(ctx, to, a)
}

// drain handles the signals already delivered, before the workflow ends
// or continues as new, so none is lost; it reports whether any was. Runs
// from before lockCarryVersion drain before continuing as new; every run
// still drains before it idles out.
func (l *lock) drain() bool {
	got := false
	for {
		var req LockRequest
		if !l.requests.ReceiveAsync(&req) {
			break
		}
		l.bySignal(l.ctx, req)
		got = true
	}
	for {
		var rel LockRelease
		if !l.releases.ReceiveAsync(&rel) {
			break
		}
		l.onRelease(rel)
		got = true
	}
	return got
}

// requestLockBySignal asks for a lock the way transactions from before
// lockUpdateVersion do: RequestLockActivity signals the lock (with start),
// and the answer comes back as a signal.
func requestLockBySignal(ctx workflow.Context, req LockRequest) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: config.DefaultManagerActivityTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: config.DefaultManagerActivityAttempts},
	})
	return workflow.ExecuteActivity(actx, RequestLockActivity, req).Get(ctx, nil)
}

// releaseLockBySignal gives a lock back from the workflow itself, as
// transactions from before lockUpdateVersion do.
func releaseLockBySignal(ctx workflow.Context, lock, transaction string) workflow.Future {
	return workflow.SignalExternalWorkflow(ctx, lock, "", LockReleaseSignal, LockRelease{Transaction: transaction})
}
