package auth

import (
	"context"
)

// UsersFile is the built-in authenticator of the default realm: a password
// or an API token checked against the users file at Path. The file is read
// on every login, so `relman user add` and `relman token create` take
// effect without a restart.
type UsersFile struct {
	Path string
}

// Authenticate checks a token when the credentials carry one, else the
// username and password.
func (u UsersFile) Authenticate(_ context.Context, c Credentials) (Principal, error) {
	f, err := Load(u.Path)
	if err != nil {
		return Principal{}, &UnavailableError{Server: "the manager's users file", Err: err}
	}
	if c.Token != "" {
		return f.TokenPrincipal(c.Token)
	}
	if c.Username == "" && c.Password == "" {
		return Principal{}, ErrDenied
	}
	return f.Password(c.Username, c.Password)
}

// Asserted here so a change to the public interface breaks the build, not
// a manager at start.
var _ Authenticator = UsersFile{}
