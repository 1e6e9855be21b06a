package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeatEvery is well under workflows.HeartbeatTimeout, so a slow step
// never looks like a dead worker, and a cancel reaches the activity quickly.
const heartbeatEvery = 3 * time.Second

// progress heartbeats the current phase of a long activity until stopped.
// Heartbeating is also how the activity learns of a cancel request.
type progress struct {
	mu    sync.Mutex
	phase string
	stop  chan struct{}
	done  chan struct{}
}

func startProgress(ctx context.Context, phase string) *progress {
	p := &progress{phase: phase, stop: make(chan struct{}), done: make(chan struct{})}
	if !activity.IsActivity(ctx) {
		close(p.done)
		return p
	}
	activity.RecordHeartbeat(ctx, phase)
	go func() {
		defer close(p.done)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				p.mu.Lock()
				ph := p.phase
				p.mu.Unlock()
				activity.RecordHeartbeat(ctx, ph)
			}
		}
	}()
	return p
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
