package xmlrpc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/relman/relman/config"
)

// CodeThrottled: a login refused without looking at the credentials,
// because too many logins for the user, or from the address, failed just
// before; the fault says how long to wait.
const CodeThrottled = 8

// Login throttling: the first failures are free (a typo), then every
// further failure locks the user at that address, or the address, out for
// a delay that doubles each time, from loginBaseDelay up to loginMaxDelay.
// A user is counted per address: someone guessing from elsewhere locks out
// their own address, never the user where the user really is. A user's
// count clears when they log in; an address's when it has failed nothing
// for loginForget. While locked out, logins are refused at once, before
// any password is checked, so guessing slows to a handful an hour. An
// address gets more free failures than a user: many people may share one
// (a NAT, a CI runner).
const (
	loginFreeUser  = 5
	loginFreeAddr  = 20
	loginBaseDelay = config.DefaultLoginBaseDelay
	loginMaxDelay  = config.DefaultLoginMaxDelay
	loginForget    = config.DefaultLoginForget
	// loginMaxTracked bounds the memory a flood of made-up user names
	// can take; the oldest quiet entries go first.
	loginMaxTracked = 10000
)

// strikes is the failed logins of one user or one address.
type strikes struct {
	failures int
	last     time.Time
	until    time.Time
}

// throttle counts failed logins per user at an address, and per address.
type throttle struct {
	mu    sync.Mutex
	now   func() time.Time
	log   *slog.Logger
	users map[userAt]*strikes
	addrs map[string]*strikes
}

// userAt is a user logging in from an address.
type userAt struct{ user, addr string }

func newThrottle(now func() time.Time, log *slog.Logger) *throttle {
	if now == nil {
		now = time.Now
	}
	return &throttle{now: now, log: log, users: map[userAt]*strikes{}, addrs: map[string]*strikes{}}
}

// check refuses a login while its user at its address, or its address,
// is locked out.
func (t *throttle) check(user, addr string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if s := t.users[userAt{user, addr}]; user != "" && s != nil && now.Before(s.until) {
		return Faultf(CodeThrottled, "too many failed logins for user %s from %s; try again in %s", clip(user), addr, wait(s.until.Sub(now)))
	}
	if s := t.addrs[addr]; addr != "" && s != nil && now.Before(s.until) {
		return Faultf(CodeThrottled, "too many failed logins from %s; try again in %s", addr, wait(s.until.Sub(now)))
	}
	return nil
}

// failed counts a failed login and locks out, and logs, whoever is past
// their free failures.
func (t *throttle) failed(user, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if user != "" {
		strike(t, t.users, "user", userAt{user, addr}, user, addr, loginFreeUser, now)
	}
	if addr != "" {
		strike(t, t.addrs, "address", addr, addr, addr, loginFreeAddr, now)
	}
}

func strike[K comparable](t *throttle, m map[K]*strikes, kind string, key K, name, addr string, free int, now time.Time) {
	s := m[key]
	if s == nil || now.Sub(s.last) > loginForget {
		if len(m) >= loginMaxTracked {
			prune(m, now)
		}
		s = &strikes{}
		m[key] = s
	}
	s.failures++
	s.last = now
	if s.failures <= free {
		return
	}
	delay := loginBaseDelay << min(s.failures-free-1, 20)
	delay = min(delay, loginMaxDelay)
	s.until = now.Add(delay)
	t.log.Warn("login lock-out", kind, clip(name), "address", addr, "failures", s.failures, "for", delay)
}

// succeeded clears a user's failures at addr: they knew their password.
func (t *throttle) succeeded(user, addr string) {
	if user == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.users, userAt{user, addr})
}

// prune drops the entries not locked out and quiet the longest, down to
// three quarters of the bound.
func prune[K comparable](m map[K]*strikes, now time.Time) {
	for k, s := range m {
		if now.After(s.until) && now.Sub(s.last) > loginForget {
			delete(m, k)
		}
	}
	for len(m) > loginMaxTracked*3/4 {
		var oldest K
		var at time.Time
		found := false
		for k, s := range m {
			if now.Before(s.until) {
				continue
			}
			if !found || s.last.Before(at) {
				oldest, at, found = k, s.last, true
			}
		}
		if !found {
			return
		}
		delete(m, oldest)
	}
}

func wait(d time.Duration) time.Duration {
	return max(d.Round(time.Second), time.Second)
}

// remoteKey is the context key of the caller's address.
type remoteKey struct{}

// withRemote notes the caller's IP address (without the port) in ctx.
func withRemote(ctx context.Context, remoteAddr string) context.Context {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	return context.WithValue(ctx, remoteKey{}, host)
}

// remote is the caller's IP address, or "" outside an HTTP call.
func remote(ctx context.Context) string {
	s, _ := ctx.Value(remoteKey{}).(string)
	return s
}

// throttleUser is the key a login counts against: the user in their realm,
// or none for a token (it names no user before it is checked).
func throttleUser(username, realm string) string {
	if username == "" {
		return ""
	}
	if realm == "" {
		realm = "local"
	}
	return fmt.Sprintf("%s@%s", strings.ToLower(username), realm)
}
