package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/relman/relman/config"
)

// heartbeatEvery (config.DefaultHeartbeatEvery) is well under
// config.DefaultHeartbeatTimeout, so a slow step never looks like a dead
// worker, and a cancel reaches the activity quickly. A shorter heartbeat
// timeout (the manager's timeouts.heartbeat) shortens it to a third of that
// timeout: see heartbeatInterval.
const heartbeatEvery = config.DefaultHeartbeatEvery

// minHeartbeatEvery bounds how often a heartbeat is sent.
const minHeartbeatEvery = config.DefaultMinHeartbeatEvery

// heartbeatInterval is how often to heartbeat under a heartbeat timeout:
// every heartbeatEvery, but at least three times per timeout, so one late
// heartbeat (a busy machine, a slow network) never fails a live activity.
func heartbeatInterval(timeout time.Duration) time.Duration {
	every := heartbeatEvery
	if timeout > 0 && timeout/3 < every {
		every = max(timeout/3, minHeartbeatEvery)
	}
	return every
}

// progress heartbeats the current phase of a long activity until stopped.
// Heartbeating is also how the activity learns of a cancel request.
type progress struct {
	mu    sync.Mutex
	phase string
	// commit, once a build knows it, goes with each heartbeat, so a retry
	// of the build (lastCommit) builds the same commit.
	commit string
	stop   chan struct{}
	done   chan struct{}
}

func startProgress(ctx context.Context, phase string) *progress {
	p := &progress{phase: phase, stop: make(chan struct{}), done: make(chan struct{})}
	if !activity.IsActivity(ctx) {
		close(p.done)
		return p
	}
	// No heartbeat at once: a short activity (a no-op install, a build
	// found built) ends before the first tick and costs no server call for
	// it; a long one heartbeats within a third of its heartbeat timeout.
	go func() {
		defer close(p.done)
		t := time.NewTicker(heartbeatInterval(activity.GetInfo(ctx).HeartbeatTimeout))
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.mu.Lock()
				ph, commit := p.phase, p.commit
				p.mu.Unlock()
				activity.RecordHeartbeat(ctx, Beat{Phase: ph, Commit: commit})
			}
		}
	}()
	return p
}

func (p *progress) setCommit(commit string) {
	p.mu.Lock()
	p.commit = commit
	p.mu.Unlock()
}

// lastCommit is the commit an earlier attempt of this activity heartbeated,
// or "" when it heartbeated none.
func lastCommit(ctx context.Context) string {
	if !activity.IsActivity(ctx) || !activity.HasHeartbeatDetails(ctx) {
		return ""
	}
	var b Beat
	if err := activity.GetHeartbeatDetails(ctx, &b); err != nil {
		return "" // an older builder's beat: its phase alone
	}
	return b.Commit
}

// Beat is what a long activity heartbeats: the phase it is in and, for a
// build that knows it, the commit it builds.
type Beat struct {
	Phase  string `json:"phase"`
	Commit string `json:"commit,omitempty"`
}

func (p *progress) set(phase string) {
	p.mu.Lock()
	p.phase = phase
	p.mu.Unlock()
}

func (p *progress) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}
