package registry

import (
	"context"
	"sync"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// Lister reads the live registrations (Registry.List).
type Lister interface {
	List(ctx context.Context, now time.Time) ([]workflows.Lease, error)
}

// Shared reads the registry once for every caller that asks while a read
// is under way. Reading the registry queries each shard, so a burst of
// releases planned at once would otherwise query every shard once each.
// A caller never gets a read that started before it asked: one that asks
// while a read runs waits for the next, which starts when that one ends
// and serves everyone who asked meanwhile. So a registration that has
// returned is in every answer given to a caller that asked after it, as
// with a read of its own.
type Shared struct {
	Lister Lister
	// Timeout bounds one read, which no single caller's context may cut
	// short; default 30s.
	Timeout time.Duration

	mu      sync.Mutex
	running bool
	next    *read // the read the callers who asked meanwhile wait for
}

type read struct {
	done   chan struct{}
	leases []workflows.Lease
	err    error
}

// List answers with a read that started after the call, keeping the
// leases still live at now.
func (s *Shared) List(ctx context.Context, now time.Time) ([]workflows.Lease, error) {
	s.mu.Lock()
	if s.next == nil {
		s.next = &read{done: make(chan struct{})}
	}
	r := s.next
	if !s.running {
		s.startLocked()
	}
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-r.done:
	}
	if r.err != nil && Partial(r.err) == nil {
		return nil, r.err
	}
	live := make([]workflows.Lease, 0, len(r.leases))
	for _, l := range r.leases {
		if l.Expires.After(now) {
			live = append(live, l)
		}
	}
	return live, r.err
}

// startLocked runs the next read; s.mu is held.
func (s *Shared) startLocked() {
	r := s.next
	s.next = nil
	s.running = true
	go func() {
		timeout := s.Timeout
		if timeout <= 0 {
			timeout = config.DefaultSharedReadTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		r.leases, r.err = s.Lister.List(ctx, time.Now())
		cancel()
		close(r.done)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.running = false
		if s.next != nil {
			s.startLocked()
		}
	}()
}
