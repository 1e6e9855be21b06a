package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// Registry maps realm names to authenticators. The zero value is empty and
// ready to use; a manager builds one at start and only reads it afterwards.
type Registry struct {
	mu     sync.RWMutex
	realms map[string]Authenticator
}

var realmName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidRealm reports whether name can name a realm.
func ValidRealm(name string) bool { return realmName.MatchString(name) }

// Register adds an authenticator under a realm name. A name may be
// registered once: a second authenticator would silently take the first
// one's users.
func (r *Registry) Register(realm string, a Authenticator) error {
	if !ValidRealm(realm) {
		return fmt.Errorf("realm name %q is invalid; use 1 to 63 lowercase letters, digits, '.', '_' or '-'", realm)
	}
	if a == nil {
		return fmt.Errorf("realm %q: the authenticator is nil", realm)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.realms[realm]; dup {
		return fmt.Errorf("realm %q is registered twice; give one of them another name", realm)
	}
	if r.realms == nil {
		r.realms = map[string]Authenticator{}
	}
	r.realms[realm] = a
	return nil
}

// Realms lists the registered realm names, sorted.
func (r *Registry) Realms() []string {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.realms))
}

// Lookup returns the authenticator of a realm.
func (r *Registry) Lookup(realm string) (Authenticator, bool) {
	if r == nil {
		return nil, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.realms[realm]
	return a, ok
}

// Authenticate checks credentials with the authenticator of their realm
// (DefaultRealm when they name none) and narrows the principal to the
// credentials' role. Errors: ErrDenied for wrong credentials, with no more
// detail; *UnknownRealmError; *RoleError; *RealmError for an authenticator
// that failed (errors.Is(err, ErrUnavailable) when it could not answer).
func (r *Registry) Authenticate(ctx context.Context, c Credentials) (Principal, error) {
	realm := c.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	a, ok := r.Lookup(realm)
	if !ok {
		return Principal{}, &UnknownRealmError{Realm: realm, Known: r.Realms()}
	}
	p, err := a.Authenticate(ctx, c)
	if err != nil {
		if errors.Is(err, ErrDenied) {
			// Whatever the authenticator added would tell a wrong password
			// from an unknown user.
			return Principal{}, ErrDenied
		}
		return Principal{}, &RealmError{Realm: realm, Err: redact(err, c)}
	}
	if !validName(p.Name) {
		return Principal{}, &RealmError{Realm: realm, Err: fmt.Errorf("the authenticator returned the user name %q; want at most 128 printable characters without spaces", clip(p.Name))}
	}
	p.Realm = realm
	p.Roles = slices.Clone(p.Roles)
	if c.Role != "" {
		if !slices.Contains(p.Roles, c.Role) {
			return Principal{}, &RoleError{User: p.ID(), Role: c.Role, Roles: p.Roles}
		}
		p.Roles = []string{c.Role}
	}
	return p, nil
}

// Authorize asks the principal's realm whether it may do r, when that
// realm's authenticator is also an Authorizer; otherwise it allows. The
// manager's policy is checked apart from this, and first.
func (r *Registry) Authorize(ctx context.Context, p Principal, req Request) error {
	realm := p.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	a, ok := r.Lookup(realm)
	if !ok {
		return &UnknownRealmError{Realm: realm, Known: r.Realms()}
	}
	az, ok := a.(Authorizer)
	if !ok {
		return nil
	}
	if err := az.Authorize(ctx, p, req); err != nil {
		return &RealmError{Realm: realm, Err: err, Authorizing: true}
	}
	return nil
}

// UnknownRealmError: the credentials name a realm nobody registered.
type UnknownRealmError struct {
	Realm string
	Known []string
}

func (e *UnknownRealmError) Error() string {
	known := "none"
	if len(e.Known) > 0 {
		known = strings.Join(e.Known, ", ")
	}
	return fmt.Sprintf("unknown realm %q; this manager knows realms: %s", clip(e.Realm), known)
}

// RoleError: the credentials ask for a role the principal does not have.
type RoleError struct {
	User  string
	Role  string
	Roles []string
}

func (e *RoleError) Error() string {
	have := "none"
	if len(e.Roles) > 0 {
		have = strings.Join(e.Roles, ", ")
	}
	return fmt.Sprintf("user %s does not have role %q (their roles: %s); ask for one of those, or leave role out to act with all of them", e.User, clip(e.Role), have)
}

// RealmError: a realm's authenticator failed, or its Authorizer refused.
type RealmError struct {
	Realm string
	Err   error
	// Authorizing: the error came from Authorize, not Authenticate.
	Authorizing bool
}

func (e *RealmError) Error() string {
	if e.Authorizing {
		return fmt.Sprintf("realm %q refuses: %v", e.Realm, e.Err)
	}
	if u := (*UnavailableError)(nil); errors.As(e.Err, &u) {
		return fmt.Sprintf("realm %q cannot check credentials now: %s does not answer; its logins are refused until it does, try again later", e.Realm, u.Server)
	}
	return fmt.Sprintf("realm %q could not check the credentials; its logins are refused until it can, see the manager's log", e.Realm)
}

func (e *RealmError) Unwrap() error { return e.Err }

// Detail is the whole error, cause included, for the manager's log; Error
// leaves the cause out because callers see it.
func (e *RealmError) Detail() string {
	return fmt.Sprintf("realm %q: %v", e.Realm, e.Err)
}

// redact drops an authenticator's error that quotes the credentials'
// secrets, keeping only whether it was an outage.
func redact(err error, c Credentials) error {
	msg := err.Error()
	if (c.Password == "" || !strings.Contains(msg, c.Password)) && (c.Token == "" || !strings.Contains(msg, c.Token)) {
		return err
	}
	dropped := errors.New("the authenticator's error quoted the credentials and was dropped")
	if u := (*UnavailableError)(nil); errors.As(err, &u) {
		server := u.Server
		if (c.Password != "" && strings.Contains(server, c.Password)) || (c.Token != "" && strings.Contains(server, c.Token)) {
			server = "the authenticator"
		}
		return &UnavailableError{Server: server, Err: dropped}
	}
	return dropped
}

func validName(s string) bool {
	return s != "" && len(s) <= 128 && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) < 0
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
