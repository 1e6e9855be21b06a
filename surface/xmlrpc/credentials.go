package xmlrpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// Who is asking: credentials checked against the realms, and what the
// policy lets them do.

// requester reads the username from credentials. Nothing else in them is
// looked at, kept or logged: they may hold a password.
func requester(cred any) (string, error) {
	m, ok := cred.(map[string]any)
	if !ok {
		return "", Faultf(CodeInvalidParams, "credentials must be a struct, not %s", TypeName(cred))
	}
	u, present := m["username"]
	if !present {
		return "", nil
	}
	s, ok := u.(string)
	if !ok {
		return "", Faultf(CodeCredentialsRejected, "credentials username must be a string, not %s", TypeName(u))
	}
	if len(s) > 128 || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", Faultf(CodeCredentialsRejected, "credentials username must be at most 128 printable characters")
	}
	return s, nil
}

const anonymous = "anonymous"

// credentialKeys are the credentials' keys the gateway reads besides
// username; other keys are ignored, as the seed's plugins ignored what they
// did not know.
var credentialKeys = []string{"password", "token", "realm", "role"}

// authenticate reads credentials: {username, password} or {token}, with
// realm and role. With authentication off the username is taken as it is,
// as the seed did. With it on, every wrong credential gets the same fault,
// so nobody learns which user names exist; no credentials at all pass as
// "anonymous" only where the config allows it.
func (g *Gateway) authenticate(ctx context.Context, cred any) (auth.Principal, error) {
	name, err := requester(cred)
	if err != nil {
		return auth.Principal{}, err
	}
	a := g.Config.Auth
	if !a.Enabled() {
		return auth.Principal{Name: name}, nil
	}
	m, _ := cred.(map[string]any)
	c := auth.Credentials{Username: name}
	for _, k := range credentialKeys {
		v, present := m[k]
		if !present || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return auth.Principal{}, Faultf(CodeCredentialsRejected, "credentials %s must be a string, not %s", k, TypeName(v))
		}
		switch k {
		case "password":
			c.Password = s
		case "token":
			c.Token = s
		case "realm":
			c.Realm = s
		case "role":
			c.Role = s
		}
	}
	rejected := Faultf(CodeCredentialsRejected, "credentials rejected; send {username, password} or {token}")
	addr, user := remote(ctx), throttleUser(c.Username, c.Realm)
	if c.Token != "" {
		user = ""
	}
	if c.Username == "" && c.Password == "" && c.Token == "" {
		if a.Anonymous {
			return auth.Principal{Name: anonymous, Roles: []string{anonymous}}, nil
		}
		g.logins.failed("", addr)
		return auth.Principal{}, rejected
	}
	// Locked out: refused before any password is checked.
	if err := g.logins.check(user, addr); err != nil {
		return auth.Principal{}, err
	}
	p, err := g.Realms.Authenticate(ctx, c)
	var unknownRealm *auth.UnknownRealmError
	var role *auth.RoleError
	var failed *auth.RealmError
	switch {
	case err == nil:
		g.logins.succeeded(user, addr)
		return p, nil
	case errors.Is(err, auth.ErrDenied):
		g.logins.failed(user, addr)
		return auth.Principal{}, rejected
	case errors.As(err, &unknownRealm), errors.As(err, &role):
		return auth.Principal{}, Faultf(CodeCredentialsRejected, "%v", err)
	case errors.As(err, &failed):
		// The caller learns which realm and server failed; the log gets
		// the cause as well.
		g.log().Warn("login refused: realm failed", "realm", failed.Realm, "err", failed.Detail())
		return auth.Principal{}, Faultf(CodeInternal, "%v", err)
	}
	g.log().Error("login refused", "err", err)
	return auth.Principal{}, Faultf(CodeInternal, "could not check the credentials; try again later")
}

// allowed applies the manager's policy, then the Authorizer of the
// principal's realm, if it has one.
func (g *Gateway) allowed(ctx context.Context, p auth.Principal, action, project, env string) error {
	if !g.Config.Allowed(p, action, project, env) {
		msg := ""
		if e, ok := g.Config.Environments[env]; ok && e.Protected {
			msg = fmt.Sprintf(" (environment %q is protected: only a policy rule that names it counts)", env)
		}
		return Faultf(CodeForbidden, "user %s may not %s project %q%s%s", p.ID(), action, project, inEnv(env), msg)
	}
	if p.Realm == "" {
		// anonymous: no realm vouched for it, so none has a say.
		return nil
	}
	err := g.Realms.Authorize(ctx, p, auth.Request{Action: action, Project: project, Env: env})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrUnavailable):
		g.log().Warn("request refused: realm could not authorize", "realm", p.Realm, "err", err)
		return Faultf(CodeInternal, "realm %q could not authorize the request now; try again later", p.Realm)
	}
	return Faultf(CodeForbidden, "user %s may not %s project %q%s: %v", p.ID(), action, project, inEnv(env), err)
}

// mayRead checks the principal may read the transaction (auth on).
func (g *Gateway) mayRead(ctx context.Context, p auth.Principal, id string) error {
	if !g.Config.Auth.Enabled() {
		return nil
	}
	d, err := g.transactions().Get(ctx, id)
	if err != nil && !errors.Is(err, transaction.ErrNotYet) {
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	return g.mayReadDetail(ctx, p, d)
}

// mayReadDetail checks the principal may read the transaction d (auth on;
// nil d: not run yet, nothing to read in it).
func (g *Gateway) mayReadDetail(ctx context.Context, p auth.Principal, d *workflows.Detail) error {
	if !g.Config.Auth.Enabled() || d == nil {
		return nil
	}
	if err := g.allowed(ctx, p, auth.ActionRead, d.Request.Project, d.Request.Env); err != nil {
		var f *Fault
		if errors.As(err, &f) && f.Code == CodeForbidden {
			return Faultf(CodeForbidden, "user %s may not read transactions of project %q%s", p.ID(), d.Request.Project, inEnv(d.Request.Env))
		}
		return err
	}
	return nil
}

func inEnv(env string) string {
	if env == "" {
		return ""
	}
	return " in environment " + strconv.Quote(env)
}
