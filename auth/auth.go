// Package auth is relman's public authentication API: the seed's auth
// plugins with their authenticate and authorize. An Authenticator turns
// Credentials into a Principal; a Registry maps realm names to
// authenticators, and the realm in the credentials picks one. A manager
// binary built from relman's packages passes its own authenticators in a
// Registry beside the ones its config defines (the users file, LDAP).
//
// An authenticator may have more abilities, found by type assertion as the
// seed found its plugins' methods: an Authorizer also decides what its
// principals may do, on top of the manager's policy.
//
// The package also holds relman's own realm and its rules: the users file
// and API tokens (users.go, usersfile.go), request signatures
// (signature.go) and the manager's policy (policy.go). They are public
// because public types carry them: config.Manager.Policy is a Policy and
// the workflows' signed inputs carry a *Signature.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// DefaultRealm is the users file's realm, the one credentials without a
// realm go to.
const DefaultRealm = "local"

// Actions a principal asks for, as the manager's policy names them.
const (
	ActionBuild   = "build"
	ActionInstall = "install"
	ActionCancel  = "cancel"
	ActionApprove = "approve"
	ActionRead    = "read"
	// ActionRollback switches an environment back to an earlier release.
	// A rule granting install grants it too (configs from before it
	// existed keep working); a rule may grant rollback alone, say to
	// whoever is on call.
	ActionRollback = "rollback"
)

// Credentials are what a client sends: the seed's username, password,
// realm and role, and a relman API token. They hold secrets, so every way
// of printing them leaves the password and token out.
type Credentials struct {
	Username string
	Password string
	Token    string
	// Realm picks the authenticator; empty means DefaultRealm.
	Realm string
	// Role, when set, narrows the principal to this one of its roles.
	Role string
}

// String shows the credentials without their secrets.
func (c Credentials) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "{username: %q, realm: %q, role: %q", c.Username, c.Realm, c.Role)
	if c.Password != "" {
		b.WriteString(", password: [redacted]")
	}
	if c.Token != "" {
		b.WriteString(", token: [redacted]")
	}
	b.WriteString("}")
	return b.String()
}

// Format makes %v, %+v, %#v and %s print String, so a stray Printf of the
// struct never shows the password.
func (c Credentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// LogValue keeps the secrets out of structured logs.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("realm", c.Realm), slog.String("role", c.Role))
}

// Principal is who is asking, once authenticated.
type Principal struct {
	Name  string
	Roles []string
	// Realm is the realm that authenticated the principal; the Registry
	// sets it, so an authenticator cannot speak for another realm.
	Realm string
}

// ID names the principal across realms: the name alone in the default
// realm, name@realm in any other, so alice of the users file and alice of
// LDAP are never taken for one person (four eyes, the recorded requester).
func (p Principal) ID() string {
	if p.Realm == "" || p.Realm == DefaultRealm {
		return p.Name
	}
	return p.Name + "@" + p.Realm
}

// Authenticator checks credentials. It returns ErrDenied (or an error
// wrapping it) for credentials that are wrong, whatever the reason, and an
// *UnavailableError when it cannot check them at all. Its errors must never
// contain the password or token.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (Principal, error)
}

// Request is what a principal asks to do.
type Request struct {
	Action  string // one of the Action constants
	Project string
	Env     string // empty for a build, which is not environment aware
}

// Authorizer is an optional ability of an Authenticator: the seed's
// authorize. The manager asks it after its own policy allowed a request, so
// it can refuse what the policy allows but never allow what the policy
// refuses. A nil error allows; any error refuses, and its text is shown to
// the caller, so say why ("a change freeze is on until Monday").
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, r Request) error
}

// ErrDenied is the one answer to a wrong user, a wrong password and a wrong
// token alike, so a caller cannot learn which user names exist.
var ErrDenied = errors.New("credentials rejected")

// ErrUnavailable matches every *UnavailableError.
var ErrUnavailable = errors.New("authenticator unavailable")

// UnavailableError says an authenticator could not check credentials: its
// server is down, say. Logins are refused, never let through.
type UnavailableError struct {
	// Server names what did not answer ("LDAP server ldap://dir:389"); it
	// is shown to the caller.
	Server string
	// Err is why; it goes to the manager's log, not to the caller.
	Err error
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Server + " does not answer"
	}
	return fmt.Sprintf("%s does not answer: %v", e.Server, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }
