package source

import (
	"context"
	"sync"
)

// cacheLock is a readers-writer lock whose waits honour ctx: a build waiting behind a
// long clone of the same project must still be cancellable. Fetches take it
// exclusively (they rewrite refs and may gc); resolving and checking out only read the
// object store, so builds of one project check out in parallel.
type cacheLock struct {
	mu             sync.Mutex
	readers        int
	writer         bool
	writersWaiting int
	changed        chan struct{}
}

var (
	locksMu sync.Mutex
	locks   = map[string]*cacheLock{}
)

// lockFor returns the process-wide lock of one cache directory. Locks are never
// removed: there is one per repository a builder serves, a small and bounded set.
func lockFor(dir string) *cacheLock {
	locksMu.Lock()
	defer locksMu.Unlock()
	l, ok := locks[dir]
	if !ok {
		l = &cacheLock{changed: make(chan struct{})}
		locks[dir] = l
	}
	return l
}

func (l *cacheLock) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// lock takes the lock exclusively; waiting writers block new readers so a steady
// stream of builds cannot starve a fetch.
func (l *cacheLock) lock(ctx context.Context) error {
	counted := false
	for {
		l.mu.Lock()
		if !l.writer && l.readers == 0 {
			l.writer = true
			if counted {
				l.writersWaiting--
			}
			l.mu.Unlock()
			return nil
		}
		if !counted {
			l.writersWaiting++
			counted = true
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			l.writersWaiting--
			l.broadcastLocked()
			l.mu.Unlock()
			return ctx.Err()
		}
	}
}

func (l *cacheLock) unlock() {
	l.mu.Lock()
	l.writer = false
	l.broadcastLocked()
	l.mu.Unlock()
}

func (l *cacheLock) rlock(ctx context.Context) error {
	for {
		l.mu.Lock()
		if !l.writer && l.writersWaiting == 0 {
			l.readers++
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *cacheLock) runlock() {
	l.mu.Lock()
	l.readers--
	l.broadcastLocked()
	l.mu.Unlock()
}
