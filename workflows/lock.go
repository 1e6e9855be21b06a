package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/rollout"
)

// Defaults of a Lock workflow.
const (
	// DefaultLockTimeout bounds how long a transaction waits for a lock.
	DefaultLockTimeout = time.Hour
	DefaultLockCheck   = time.Minute
	DefaultLockIdle    = 10 * time.Minute
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
	// answer tells a release by signal; ctx is the caller's (the main
	// loop's or an update handler's), as every blocking call needs.
	answer := func(ctx workflow.Context, to string, a LockAnswer) bool {
		a.Lock = lockID
		err := workflow.SignalExternalWorkflow(ctx, to, "", LockAnswerSignal, a).Get(ctx, nil)
		if err != nil {
			// The release has closed: it no longer wants the lock.
			logger.Info("lock answer not delivered", "transaction", to, "error", err)
		}
		return err == nil
	}
	// told are answers sent without waiting for their delivery.
	type toldAnswer struct {
		to string
		f  workflow.Future
	}
	var told []toldAnswer
	delivered := func(t toldAnswer) bool {
		if !t.f.IsReady() {
			return false
		}
		if err := t.f.Get(ctx, nil); err != nil { // ready: no wait
			// A release that has closed no longer listens.
			logger.Info("lock answer not delivered", "transaction", t.to, "error", err)
		}
		return true
	}
	// The state changes before any answer is sent: sending blocks, and an
	// update handler may run meanwhile and must see the lock as it will be.
	grantNext := func(ctx workflow.Context) {
		for st.Holder == "" && len(st.Queue) > 0 {
			next := st.Queue[0]
			st.Queue = st.Queue[1:]
			st.Holder = next
			if answer(ctx, next, LockAnswer{Granted: true}) {
				logger.Info("lock granted", "transaction", next)
			} else if st.Holder == next {
				st.Holder = ""
			}
		}
	}
	// onRequest decides a request and tells the release through reply: a
	// signal for a request that came as a signal, the update's result for
	// one that came as an update.
	onRequest := func(ctx workflow.Context, req LockRequest, reply func(LockAnswer) bool) {
		switch {
		case req.Transaction == "":
		case req.Transaction == st.Holder:
			reply(LockAnswer{Granted: true})
		case st.Holder == "" && len(st.Queue) == 0:
			st.Holder = req.Transaction
			if reply(LockAnswer{Granted: true}) {
				logger.Info("lock granted", "transaction", req.Transaction)
			} else if st.Holder == req.Transaction {
				st.Holder = ""
			}
		case slices.Contains(st.Queue, req.Transaction):
			reply(LockAnswer{Holder: st.Holder, Position: slices.Index(st.Queue, req.Transaction) + 1})
		case req.Refuse:
			reply(LockAnswer{Refused: true, Holder: st.Holder})
		case req.Supersede:
			// Only the newest waiting release is worth installing: the
			// others are told so and leave, this one waits in their place.
			old := st.Queue
			st.Queue = []string{req.Transaction}
			holder := st.Holder
			// Told without waiting for each delivery, which would hold the
			// lock up one dispatch per superseded release (a burst); the
			// deliveries are awaited before the run ends.
			async := workflow.GetVersion(ctx, lockSupersedeAsyncVersion, workflow.DefaultVersion, 1) == 1
			for _, o := range old {
				a := LockAnswer{Lock: lockID, Holder: holder, SupersededBy: req.Transaction}
				if async {
					told = append(told, toldAnswer{o, workflow.SignalExternalWorkflow(ctx, o, "", LockAnswerSignal, a)})
				} else {
					answer(ctx, o, a)
				}
				logger.Info("superseded", "transaction", o, "by", req.Transaction)
			}
			reply(LockAnswer{Holder: holder, Position: 1})
		default:
			st.Queue = append(st.Queue, req.Transaction)
			reply(LockAnswer{Holder: st.Holder, Position: len(st.Queue)})
		}
	}
	bySignal := func(ctx workflow.Context, req LockRequest) {
		onRequest(ctx, req, func(a LockAnswer) bool { return answer(ctx, req.Transaction, a) })
	}
	// An update (AcquireLock) is answered with its result: no signal back,
	// so asking costs the release no wait for a delivery.
	wake := workflow.NewBufferedChannel(ctx, 1)
	err := workflow.SetUpdateHandlerWithOptions(ctx, LockAcquireUpdate,
		func(ctx workflow.Context, req LockRequest) (LockAnswer, error) {
			var got LockAnswer
			onRequest(ctx, req, func(a LockAnswer) bool { got = a; return true })
			got.Lock = lockID
			wake.SendAsync(true)
			return got, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, req LockRequest) error {
			if req.Transaction == "" {
				return errors.New("a lock request names the transaction that asks")
			}
			return nil
		}},
	)
	if err != nil {
		return err
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
			bySignal(ctx, req)
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
	// Signals the run before took but did not answer come first.
	carried := st.Carried
	st.Carried = nil
	for _, c := range carried {
		switch {
		case c.Request != nil:
			bySignal(ctx, *c.Request)
		case c.Release != nil:
			onRelease(*c.Release)
		}
	}
	// Before the run ends or continues as new, every update taken is
	// answered.
	// One wait for both: an update that runs meanwhile may supersede and
	// tell another release, whose answer must be delivered too before the
	// run ends (a signal from a closed workflow is dropped).
	handlersDone := func() error {
		if err := workflow.Await(ctx, func() bool {
			return workflow.AllHandlersFinished(ctx) && !slices.ContainsFunc(told, func(t toldAnswer) bool { return !t.f.IsReady() })
		}); err != nil {
			return err
		}
		for _, t := range told {
			delivered(t)
		}
		told = nil
		return nil
	}
	for {
		grantNext(ctx)
		told = slices.DeleteFunc(told, delivered)
		info := workflow.GetInfo(ctx)
		if info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > maxLockHistory {
			if err := handlersDone(); err != nil {
				return err
			}
			if workflow.GetVersion(ctx, lockCarryVersion, workflow.DefaultVersion, 1) == 1 {
				// Answering a signal waits for its delivery, and under a
				// steady stream more arrive meanwhile, so draining may
				// never end. Take what is delivered without answering and
				// hand it to the next run, which answers it first.
				st.Carried = takeDelivered(requests, releases)
				return workflow.NewContinueAsNewError(ctx, LockWorkflowName, st)
			}
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
			bySignal(ctx, req)
		})
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
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
		if ctx.Err() != nil {
			// Cancelled (by hand: nothing in relman cancels a lock). Its
			// timers would fire at once forever; end instead.
			return temporal.NewCanceledError()
		}
		if !timedOut {
			continue
		}
		if st.Holder == "" {
			if len(st.Queue) == 0 && !drain() {
				if err := handlersDone(); err != nil {
					return err
				}
				if st.Holder == "" && len(st.Queue) == 0 {
					logger.Info("lock idle; ending", "lock", lockID)
					return nil
				}
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

// LockID is the id of the Lock workflow of one (environment, named target)
// of the manager on queue: lock-<env>-<target> for the default manager, and
// prefixed with the queue for others, since managers sharing a namespace
// may well name their environments alike.
func LockID(queue, env, target string) string {
	id := "lock-" + env + "-" + target
	if queue != "" && queue != DefaultManagerQueue {
		id = queue + "-" + id
	}
	return id
}

// LockRequest asks a Lock workflow for the lock on behalf of a release.
type LockRequest struct {
	Lock        string `json:"lock"`
	Env         string `json:"env"`
	Target      string `json:"target"`
	Transaction string `json:"transaction"`
	// Refuse: answer refused at once when another release holds it.
	Refuse bool `json:"refuse,omitempty"`
	// Supersede: take the place of every transaction waiting in the
	// queue; they are told they were superseded by this one.
	Supersede bool `json:"supersede,omitempty"`
}

// LockRelease gives a lock back, or leaves its queue.
type LockRelease struct {
	Transaction string `json:"transaction"`
}

// LockAnswer is what a Lock workflow tells a release that asked.
type LockAnswer struct {
	Lock    string `json:"lock"`
	Granted bool   `json:"granted,omitempty"`
	Refused bool   `json:"refused,omitempty"`
	// Holder is the transaction holding the lock when it is not granted.
	Holder string `json:"holder,omitempty"`
	// Position in the queue, 1 for next.
	Position int `json:"position,omitempty"`
	// SupersededBy is the newer transaction that took this one's place in
	// the queue: it no longer waits.
	SupersededBy string `json:"superseded_by,omitempty"`
}

// LockState is a Lock workflow's input (carried over continue-as-new) and
// its query answer.
type LockState struct {
	Env    string   `json:"env"`
	Target string   `json:"target"`
	Holder string   `json:"holder,omitempty"`
	Queue  []string `json:"queue,omitempty"`
	// Carried are signals delivered to the run before, not yet answered.
	Carried []LockSignal `json:"carried,omitempty"`
	// CheckEvery is how often the lock checks that its holder is still
	// running; default 1m.
	CheckEvery time.Duration `json:"check_every,omitempty"`
	// IdleFor ends the lock workflow after this long unheld; default 10m.
	IdleFor time.Duration `json:"idle_for,omitempty"`
}

// LockSignal is one signal a Lock workflow received: a request or a
// release.
type LockSignal struct {
	Request *LockRequest `json:"request,omitempty"`
	Release *LockRelease `json:"release,omitempty"`
}

// lockCarryVersion marks locks that continue as new without answering the
// signals delivered last (takeDelivered).
const lockCarryVersion = "lock-carry-signals"

// takeDelivered receives every signal already delivered, requests first,
// without waiting.
func takeDelivered(requests, releases workflow.ReceiveChannel) []LockSignal {
	var out []LockSignal
	for {
		var req LockRequest
		if !requests.ReceiveAsync(&req) {
			break
		}
		out = append(out, LockSignal{Request: &req})
	}
	for {
		var rel LockRelease
		if !releases.ReceiveAsync(&rel) {
			break
		}
		out = append(out, LockSignal{Release: &rel})
	}
	return out
}

// lockSupersedeAsyncVersion marks locks that tell superseded releases
// without waiting for each delivery.
const lockSupersedeAsyncVersion = "lock-supersede-async"

// lockVersion guards the lock acquisition: releases started before it ask
// for no lock.
const lockVersion = "lock-acquisition"

// lockTimeoutVersion marks transactions whose wait for a lock ends after
// the environment's lock_timeout.
const lockTimeoutVersion = "lock-wait-timeout"

// lockUpdateVersion marks transactions that ask for a lock with an update
// from a local activity (answered at once, no activity task and no signal
// back when the lock is free) and give it back with a local activity.
const lockUpdateVersion = "lock-update"

// ReleaseLockInput names the lock a transaction gives back.
type ReleaseLockInput struct {
	Lock        string `json:"lock"`
	Transaction string `json:"transaction"`
}

// lockLocalOptions are the options of the lock's local activities: each
// is one call to the Temporal server, retried quickly.
var lockLocalOptions = workflow.LocalActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: 5 * time.Second, MaximumAttempts: 10},
}

// acquireLocks takes the lock of every named target in env, in sorted
// order so two transactions never hold one each of what both need. The
// locks are Lock workflows (see lock.go): held by a workflow, not a
// process, so a crashed manager never leaves one held. mode is the
// environment's lock rule (wait, refuse, off); a wait longer than timeout
// (default DefaultLockTimeout) ends the transaction REJECTED, naming the
// holder, and it leaves the lock's queue as it ends.
func (g *gate) acquireLocks(ctx workflow.Context, mode, env string, targets []string, timeout time.Duration) error {
	if mode != rollout.LockWait && mode != rollout.LockRefuse && mode != rollout.LockSupersede {
		return nil
	}
	if changeVersion(ctx, lockVersion) == workflow.DefaultVersion {
		return nil
	}
	queue := workflow.GetInfo(ctx).TaskQueueName
	byUpdate := changeVersion(ctx, lockUpdateVersion) == 1
	g.locksByUpdate = byUpdate
	lctx := workflow.WithLocalActivityOptions(ctx, lockLocalOptions)
	answers := workflow.GetSignalChannel(ctx, LockAnswerSignal)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	targets = slices.Clone(targets)
	slices.Sort(targets)
	waited := false
	// The wait's end, from when the transaction first waits: nil until
	// then, and for transactions started before lock timeouts.
	var deadline workflow.Future
	var stopDeadline workflow.CancelFunc
	defer func() {
		if stopDeadline != nil {
			stopDeadline()
		}
	}()
	timeout = orDefault(timeout, DefaultLockTimeout)
	for _, t := range targets {
		id := LockID(queue, env, t)
		req := LockRequest{Lock: id, Env: env, Target: t, Transaction: g.d.Transaction,
			Refuse: mode == rollout.LockRefuse, Supersede: mode == rollout.LockSupersede}
		// Remembered before asking: a transaction that ends while queued
		// leaves the queue.
		g.locks = append(g.locks, id)
		// first is the update's answer; later ones come as signals.
		var first *LockAnswer
		if byUpdate {
			var a LockAnswer
			if err := workflow.ExecuteLocalActivity(lctx, AcquireLockActivity, req).Get(ctx, &a); err != nil {
				return err
			}
			first = &a
		} else if err := workflow.ExecuteActivity(actx, RequestLockActivity, req).Get(ctx, nil); err != nil {
			return err
		}
		holder := ""
		for {
			var a LockAnswer
			cancelled, expired := false, false
			if first != nil {
				a, first = *first, nil
			} else {
				sel := workflow.NewSelector(ctx)
				sel.AddReceive(answers, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &a) })
				sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) { cancelled = true })
				if deadline != nil {
					sel.AddFuture(deadline, func(f workflow.Future) { expired = f.Get(ctx, nil) == nil })
				}
				sel.Select(ctx)
			}
			if cancelled {
				return temporal.NewCanceledError()
			}
			if expired {
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("waited %s for lock %s, held by transaction %s, and gave up (the environment's lock_timeout); try again when it has ended",
						timeout, id, holder), ErrRejected, nil)
			}
			if a.Lock != id {
				continue
			}
			if a.Granted {
				g.event(ctx, "", fmt.Sprintf("holding lock %s", id))
				break
			}
			if a.Refused {
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("named target %s in %s is being released by transaction %s and the environment's lock is refuse; try again when it has ended",
						t, env, a.Holder), ErrRejected, nil)
			}
			if a.SupersededBy != "" {
				g.d.Waiting = ""
				return temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("superseded by transaction %s, a newer release of %s into %s, while waiting for lock %s (the environment's lock is supersede); nothing was installed",
						a.SupersededBy, t, env, id), ErrSuperseded, nil)
			}
			holder = a.Holder
			g.d.Waiting = fmt.Sprintf("lock %s held by transaction %s", id, a.Holder)
			if a.Position > 1 {
				g.d.Waiting += fmt.Sprintf(" (%d in the queue)", a.Position)
			}
			g.setStatus(ctx, StatusWaiting, "waiting for "+g.d.Waiting)
			waited = true
			if deadline == nil && changeVersion(ctx, lockTimeoutVersion) == 1 {
				var tctx workflow.Context
				tctx, stopDeadline = workflow.WithCancel(ctx)
				deadline = workflow.NewTimer(tctx, timeout)
			}
		}
	}
	if waited {
		g.d.Waiting = ""
		if g.resumed != "" {
			g.setStatus(ctx, g.resumed, g.resumedDetail)
		} else {
			g.setStatus(ctx, StatusBuildCompleted, "locks granted; installing")
		}
	}
	return nil
}

// unlock gives back every lock asked for, on a context that survives
// cancellation, so an ended transaction never keeps one held or queued.
func (g *gate) unlock(ctx workflow.Context) {
	if len(g.locks) == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var fs []workflow.Future
	for i := len(g.locks) - 1; i >= 0; i-- {
		if g.locksByUpdate {
			// A signal sent by a local activity: the workflow does not
			// wait for the server to deliver it, as it does for its own.
			in := ReleaseLockInput{Lock: g.locks[i], Transaction: g.d.Transaction}
			fs = append(fs, workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, lockLocalOptions), ReleaseLockActivity, in))
			continue
		}
		fs = append(fs, workflow.SignalExternalWorkflow(dctx, g.locks[i], "", LockReleaseSignal, LockRelease{Transaction: g.d.Transaction}))
	}
	for _, f := range fs {
		if err := f.Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("lock not released; the lock frees itself once it sees this release closed", "error", err)
		}
	}
	g.locks = nil
}
