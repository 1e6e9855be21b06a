package registry_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/workflows"
)

// slowLister is a registry whose reads take a while and see the leases
// registered before they started.
type slowLister struct {
	mu     sync.Mutex
	leases []workflows.Lease
	reads  atomic.Int32
	err    error
}

func (l *slowLister) register(id string, expires time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases = append(l.leases, workflows.Lease{Registration: workflows.Registration{Role: workflows.RoleInstaller, ID: id}, Expires: expires})
}

func (l *slowLister) List(ctx context.Context, now time.Time) ([]workflows.Lease, error) {
	l.reads.Add(1)
	l.mu.Lock()
	snap := append([]workflows.Lease(nil), l.leases...)
	err := l.err
	l.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(50 * time.Millisecond):
	}
	return snap, err
}

func ids(ls []workflows.Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

// A hundred callers at once share two reads at most, and each sees the
// registrations made before it asked.
func TestSharedReadsOnceForCallersAtOnce(t *testing.T) {
	l := &slowLister{}
	s := &registry.Shared{Lister: l}
	later := time.Now().Add(time.Hour)
	l.register("host-a", later)
	var wg sync.WaitGroup
	got := make([][]string, 100)
	for i := range 100 {
		wg.Go(func() {
			ls, err := s.List(context.Background(), time.Now())
			require.NoError(t, err)
			got[i] = ids(ls)
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, l.reads.Load(), int32(2), "one read for the first caller, one for all who asked while it ran")
	for _, g := range got {
		assert.Equal(t, []string{"host-a"}, g)
	}
}

// A caller that asks while a read runs, after a registration that read
// did not see, waits for the next read, which sees it.
func TestSharedNeverAnswersWithAnOlderRead(t *testing.T) {
	l := &slowLister{}
	s := &registry.Shared{Lister: l}
	later := time.Now().Add(time.Hour)
	first := make(chan []string)
	go func() {
		ls, _ := s.List(context.Background(), time.Now())
		first <- ids(ls)
	}()
	time.Sleep(10 * time.Millisecond) // the first read has started
	l.register("host-b", later)
	ls, err := s.List(context.Background(), time.Now())
	require.NoError(t, err)
	assert.Equal(t, []string{"host-b"}, ids(ls), "registered before the call: in the answer")
	assert.Empty(t, <-first, "the read under way had started before the registration")
	assert.Equal(t, int32(2), l.reads.Load())
}

// Leases expired at the caller's time are left out; a read's error reaches
// every caller of it; a caller's own context ends its wait only.
func TestSharedExpiryErrorsAndCancel(t *testing.T) {
	l := &slowLister{}
	s := &registry.Shared{Lister: l}
	now := time.Now()
	l.register("gone", now.Add(time.Minute))
	l.register("live", now.Add(time.Hour))
	ls, err := s.List(context.Background(), now.Add(10*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []string{"live"}, ids(ls))

	l.mu.Lock()
	l.err = errors.New("frontend unavailable")
	l.mu.Unlock()
	_, err = s.List(context.Background(), now)
	assert.ErrorContains(t, err, "frontend unavailable")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.List(ctx, now)
	assert.ErrorIs(t, err, context.Canceled)
}
