package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
	"github.com/relman/relman/rollout"
)

// Defaults of a Lock workflow.
const (
	// maxLockHistory continues the lock as new before its history grows
	// long, even when the server does not suggest it.
	maxLockHistory = 5000
)

// Lock is the mutex of one (environment, named target), id LockID(env,
// target): one release installs there at a time. A release asks with the
// AcquireLock update (answered with its result) and gives the lock back
// with a release signal when it ends, however it ends; releases started
// before lockUpdateVersion asked with a request signal and were answered
// with a signal (lock_legacy.go). A holder that closes without giving it
// back (terminated, timed out) is found by a check every CheckEvery, so
// the lock is held by a workflow, never by a process that may crash.
// Unheld for IdleFor, the workflow ends; the next request starts it again.
func Lock(ctx workflow.Context, st LockState) error {
	l := &lock{
		ctx:      ctx,
		st:       st,
		logger:   workflow.GetLogger(ctx),
		id:       workflow.GetInfo(ctx).WorkflowExecution.ID,
		requests: workflow.GetSignalChannel(ctx, LockRequestSignal),
		releases: workflow.GetSignalChannel(ctx, LockReleaseSignal),
		wake:     workflow.NewBufferedChannel(ctx, 1),
	}
	if err := workflow.SetQueryHandler(ctx, LockQuery, l.query); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, LockAcquireUpdate, l.acquire,
		workflow.UpdateHandlerOptions{Validator: l.acceptAcquire}); err != nil {
		return err
	}
	return l.run()
}

// lock is the state of a Lock workflow's run.
type lock struct {
	ctx      workflow.Context
	st       LockState
	logger   log.Logger
	id       string
	requests workflow.ReceiveChannel
	releases workflow.ReceiveChannel
	// wake tells the main loop that an update changed the lock.
	wake workflow.Channel
	// told are answers sent without waiting for their delivery.
	told []toldAnswer
}

type toldAnswer struct {
	to string
	f  workflow.Future
}

func (l *lock) query() (LockState, error) { return l.st, nil }

// acceptAcquire is the AcquireLock update's validator.
func (l *lock) acceptAcquire(_ workflow.Context, req LockRequest) error {
	if req.Transaction == "" {
		return errors.New("a lock request names the transaction that asks")
	}
	return nil
}

// acquire (update AcquireLock) is answered with its result: no signal
// back, so asking costs the release no wait for a delivery.
func (l *lock) acquire(ctx workflow.Context, req LockRequest) (LockAnswer, error) {
	var got LockAnswer
	l.onRequest(ctx, req, func(a LockAnswer) bool { got = a; return true })
	got.Lock = l.id
	l.wake.SendAsync(true)
	return got, nil
}

// onRelease (signal LockReleaseSignal) gives the lock back, or leaves its
// queue.
func (l *lock) onRelease(rel LockRelease) {
	if rel.Transaction == l.st.Holder {
		l.st.Holder = ""
		l.logger.Info("lock released", "transaction", rel.Transaction)
		return
	}
	l.st.Queue = slices.DeleteFunc(l.st.Queue, func(t string) bool { return t == rel.Transaction })
}

// answer tells a release by signal; ctx is the caller's (the main loop's
// or an update handler's), as every blocking call needs.
func (l *lock) answer(ctx workflow.Context, to string, a LockAnswer) bool {
	a.Lock = l.id
	err := workflow.SignalExternalWorkflow(ctx, to, "", LockAnswerSignal, a).Get(ctx, nil)
	if err != nil {
		// The release has closed: it no longer wants the lock.
		l.logger.Info("lock answer not delivered", "transaction", to, "error", err)
	}
	return err == nil
}

// delivered reports whether an answer told has been delivered (or has
// failed to be).
func (l *lock) delivered(t toldAnswer) bool {
	if !t.f.IsReady() {
		return false
	}
	if err := t.f.Get(l.ctx, nil); err != nil { // ready: no wait
		// A release that has closed no longer listens.
		l.logger.Info("lock answer not delivered", "transaction", t.to, "error", err)
	}
	return true
}

// allTold reports whether every answer told has been delivered.
func (l *lock) allTold() bool {
	return !slices.ContainsFunc(l.told, func(t toldAnswer) bool { return !t.f.IsReady() })
}

// forgetTold logs the answers told, all delivered, and forgets them.
func (l *lock) forgetTold() {
	for _, t := range l.told {
		l.delivered(t)
	}
	l.told = nil
}

// grantNext gives an unheld lock to the first in its queue. The state
// changes before any answer is sent: sending blocks, and an update handler
// may run meanwhile and must see the lock as it will be.
func (l *lock) grantNext(ctx workflow.Context) {
	for l.st.Holder == "" && len(l.st.Queue) > 0 {
		next := l.st.Queue[0]
		l.st.Queue = l.st.Queue[1:]
		l.st.Holder = next
		if l.answer(ctx, next, LockAnswer{Granted: true}) {
			l.logger.Info("lock granted", "transaction", next)
		} else if l.st.Holder == next {
			l.st.Holder = ""
		}
	}
}

// onRequest decides a request and tells the release through reply: a
// signal for a request that came as a signal, the update's result for one
// that came as an update.
func (l *lock) onRequest(ctx workflow.Context, req LockRequest, reply func(LockAnswer) bool) {
	st := &l.st
	switch {
	case req.Transaction == "":
	case req.Transaction == st.Holder:
		reply(LockAnswer{Granted: true})
	case st.Holder == "" && len(st.Queue) == 0:
		st.Holder = req.Transaction
		if reply(LockAnswer{Granted: true}) {
			l.logger.Info("lock granted", "transaction", req.Transaction)
		} else if st.Holder == req.Transaction {
			st.Holder = ""
		}
	case slices.Contains(st.Queue, req.Transaction):
		reply(LockAnswer{Holder: st.Holder, Position: slices.Index(st.Queue, req.Transaction) + 1})
	case req.Refuse:
		reply(LockAnswer{Refused: true, Holder: st.Holder})
	case req.Supersede:
		l.supersede(ctx, req, reply)
	default:
		st.Queue = append(st.Queue, req.Transaction)
		reply(LockAnswer{Holder: st.Holder, Position: len(st.Queue)})
	}
}

// supersede puts req in the place of every release waiting: only the
// newest waiting release is worth installing, the others are told so and
// leave.
func (l *lock) supersede(ctx workflow.Context, req LockRequest, reply func(LockAnswer) bool) {
	old := l.st.Queue
	l.st.Queue = []string{req.Transaction}
	holder := l.st.Holder
	// Told without waiting for each delivery, which would hold the lock up
	// one dispatch per superseded release (a burst); the deliveries are
	// awaited before the run ends.
	async := changeVersion(ctx, lockSupersedeAsyncVersion) == 1
	for _, o := range old {
		a := LockAnswer{Lock: l.id, Holder: holder, SupersededBy: req.Transaction}
		if async {
			l.told = append(l.told, toldAnswer{o, workflow.SignalExternalWorkflow(ctx, o, "", LockAnswerSignal, a)})
		} else {
			l.answerSync(ctx, o, a)
		}
		l.logger.Info("superseded", "transaction", o, "by", req.Transaction)
	}
	reply(LockAnswer{Holder: holder, Position: 1})
}

// handlersDone waits until every update taken is answered, before the run
// ends or continues as new. One wait for both: an update that runs
// meanwhile may supersede and tell another release, whose answer must be
// delivered too before the run ends (a signal from a closed workflow is
// dropped).
func (l *lock) handlersDone() error {
	if err := workflow.Await(l.ctx, func() bool { return workflow.AllHandlersFinished(l.ctx) && l.allTold() }); err != nil {
		return err
	}
	l.forgetTold()
	return nil
}

// carry is the next run's input: the state, with the signals delivered
// but not yet handled. Answering a signal waits for its delivery, and
// under a steady stream more arrive meanwhile, so draining may never end:
// they are taken without answering and the next run answers them first.
// Runs from before lockCarryVersion drain instead (lock_legacy.go).
func (l *lock) carry() (any, bool) {
	l.forgetTold()
	if changeVersion(l.ctx, lockCarryVersion) == 1 {
		l.st.Carried = takeDelivered(l.requests, l.releases)
		return l.st, true
	}
	if !l.drain() {
		return l.st, true
	}
	return nil, false
}

// run is the main loop: it answers the signals carried over, then waits
// for signals, updates and its timer until the lock idles or continues as
// new.
func (l *lock) run() error {
	ctx := l.ctx
	check := orDefault(l.st.CheckEvery, config.DefaultLockCheck)
	idle := orDefault(l.st.IdleFor, config.DefaultLockIdle)
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: config.DefaultManagerActivityTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: config.DefaultReadAttempts},
	})
	// Signals the run before took but did not answer come first.
	carried := l.st.Carried
	l.st.Carried = nil
	for _, c := range carried {
		switch {
		case c.Request != nil:
			l.bySignal(ctx, *c.Request)
		case c.Release != nil:
			l.onRelease(*c.Release)
		}
	}
	for {
		l.grantNext(ctx)
		l.told = slices.DeleteFunc(l.told, l.delivered)
		if historyFull(ctx, maxLockHistory) {
			if err := continueAsNew(ctx, LockWorkflowName, l.allTold, l.carry); err != nil {
				return err
			}
			continue
		}
		wait := idle
		if l.st.Holder != "" {
			wait = check
		}
		timedOut := l.waitOnce(wait)
		if ctx.Err() != nil {
			// Cancelled (by hand: nothing in relman cancels a lock). Its
			// timers would fire at once forever; end instead.
			return temporal.NewCanceledError()
		}
		if !timedOut {
			continue
		}
		if l.st.Holder == "" {
			if len(l.st.Queue) == 0 && !l.drain() {
				if err := l.handlersDone(); err != nil {
					return err
				}
				if l.st.Holder == "" && len(l.st.Queue) == 0 {
					l.logger.Info("lock idle; ending", "lock", l.id)
					return nil
				}
			}
			continue
		}
		l.checkHolder(actx)
	}
}

// waitOnce waits for one signal, update or wait to pass; it reports
// whether the wait passed.
func (l *lock) waitOnce(wait time.Duration) bool {
	ctx := l.ctx
	tctx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timedOut := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(l.requests, func(c workflow.ReceiveChannel, _ bool) {
		var req LockRequest
		c.Receive(ctx, &req)
		l.bySignal(ctx, req)
	})
	sel.AddReceive(l.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.AddReceive(l.releases, func(c workflow.ReceiveChannel, _ bool) {
		var rel LockRelease
		c.Receive(ctx, &rel)
		l.onRelease(rel)
	})
	sel.AddFuture(workflow.NewTimer(tctx, wait), func(f workflow.Future) {
		timedOut = f.Get(tctx, nil) == nil
	})
	sel.Select(ctx)
	return timedOut
}

// checkHolder releases the lock of a holder that closed without giving
// it back.
func (l *lock) checkHolder(actx workflow.Context) {
	var open bool
	if err := workflow.ExecuteActivity(actx, LockHolderOpenActivity, l.st.Holder).Get(l.ctx, &open); err != nil {
		l.logger.Warn("could not check the lock's holder; keeping it", "holder", l.st.Holder, "error", err)
		return
	}
	if !open {
		l.logger.Warn(fmt.Sprintf("holder %s closed without releasing the lock; releasing it", l.st.Holder))
		l.st.Holder = ""
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

// lockLocalRetry is the retry policy of the lock's local activities: each
// is one call to the Temporal server, retried quickly.
func lockLocalRetry() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{InitialInterval: config.DefaultLocalRetryInterval, MaximumInterval: config.DefaultLocalRetryMax, MaximumAttempts: 10}
}

// acquireLocks takes the lock of every named target in env, in sorted
// order so two transactions never hold one each of what both need. The
// locks are Lock workflows (see lock.go): held by a workflow, not a
// process, so a crashed manager never leaves one held. mode is the
// environment's lock rule (wait, refuse, off); a wait longer than timeout
// (default config.DefaultLockTimeout) ends the transaction REJECTED, naming the
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
	lctx := withLocalActivity(ctx, lockLocalRetry())
	answers := workflow.GetSignalChannel(ctx, LockAnswerSignal)
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
	timeout = orDefault(timeout, config.DefaultLockTimeout)
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
		} else if err := requestLockBySignal(ctx, req); err != nil {
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
			fs = append(fs, workflow.ExecuteLocalActivity(withLocalActivity(dctx, lockLocalRetry()), ReleaseLockActivity, in))
			continue
		}
		fs = append(fs, releaseLockBySignal(dctx, g.locks[i], g.d.Transaction))
	}
	for _, f := range fs {
		if err := f.Get(dctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("lock not released; the lock frees itself once it sees this release closed", "error", err)
		}
	}
	g.locks = nil
}
