package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// table authenticates from a map of name -> password, and refuses every
// install into prod as an Authorizer.
type table struct {
	users map[string]string
	roles map[string][]string
	fail  error // returned instead of checking, when set
	name  string
}

func (t table) Authenticate(_ context.Context, c Credentials) (Principal, error) {
	if t.fail != nil {
		return Principal{}, t.fail
	}
	pw, ok := t.users[c.Username]
	if !ok {
		return Principal{}, fmt.Errorf("no user %s: %w", c.Username, ErrDenied)
	}
	if pw != c.Password {
		return Principal{}, fmt.Errorf("wrong password for %s: %w", c.Username, ErrDenied)
	}
	name := c.Username
	if t.name != "" {
		name = t.name
	}
	return Principal{Name: name, Roles: t.roles[c.Username], Realm: "forged"}, nil
}

type freezing struct{ table }

func (freezing) Authorize(_ context.Context, _ Principal, r Request) error {
	if r.Action == ActionInstall && r.Env == "prod" {
		return errors.New("a change freeze is on until Monday")
	}
	return nil
}

func TestRegistryAuthenticate(t *testing.T) {
	var reg Registry
	users := table{users: map[string]string{"alice": "alice-pw", "bob": "bob-pw"}, roles: map[string][]string{"alice": {"tester", "deployer"}}}
	require.NoError(t, reg.Register(DefaultRealm, users))
	require.NoError(t, reg.Register("corp", freezing{users}))
	require.NoError(t, reg.Register("down", table{fail: &UnavailableError{Server: "LDAP server ldap://dir.example:389", Err: errors.New("connection refused")}}))
	require.NoError(t, reg.Register("leaky", table{fail: errors.New("bind failed for password alice-pw")}))
	require.NoError(t, reg.Register("blank", table{users: map[string]string{"alice": "alice-pw"}, name: "two words"}))

	tests := map[string]struct {
		cred    Credentials
		want    Principal
		wantErr string
		is      error
	}{
		"default realm": {cred: Credentials{Username: "alice", Password: "alice-pw"},
			want: Principal{Name: "alice", Roles: []string{"tester", "deployer"}, Realm: "local"}},
		"named realm": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "corp"},
			want: Principal{Name: "alice", Roles: []string{"tester", "deployer"}, Realm: "corp"}},
		"role narrows": {cred: Credentials{Username: "alice", Password: "alice-pw", Role: "tester"},
			want: Principal{Name: "alice", Roles: []string{"tester"}, Realm: "local"}},
		"role not held": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "corp", Role: "admin"},
			wantErr: `user alice@corp does not have role "admin" (their roles: tester, deployer)`},
		"role, no roles": {cred: Credentials{Username: "bob", Password: "bob-pw", Role: "tester"},
			wantErr: `user bob does not have role "tester" (their roles: none)`},
		"unknown realm": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "nope"},
			wantErr: `unknown realm "nope"; this manager knows realms: blank, corp, down, leaky, local`},
		"wrong password": {cred: Credentials{Username: "alice", Password: "x"}, wantErr: "credentials rejected", is: ErrDenied},
		"unknown user":   {cred: Credentials{Username: "mallory", Password: "alice-pw"}, wantErr: "credentials rejected", is: ErrDenied},
		"down": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "down"},
			wantErr: `realm "down" cannot check credentials now: LDAP server ldap://dir.example:389 does not answer; its logins are refused`, is: ErrUnavailable},
		"leaky error": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "leaky"},
			wantErr: `realm "leaky" could not check the credentials`},
		"bad name": {cred: Credentials{Username: "alice", Password: "alice-pw", Realm: "blank"},
			wantErr: `realm "blank" could not check the credentials`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := reg.Authenticate(context.Background(), tc.cred)
			if tc.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, p)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			var re *RealmError
			if errors.As(err, &re) {
				assert.NotContains(t, re.Detail(), tc.cred.Password, "the cause goes to the log: no password in it")
			}
			assert.NotContains(t, err.Error(), tc.cred.Password)
		})
	}

	_, wrong := reg.Authenticate(context.Background(), Credentials{Username: "alice", Password: "x"})
	_, unknown := reg.Authenticate(context.Background(), Credentials{Username: "mallory", Password: "x"})
	assert.Equal(t, wrong, unknown, "a wrong password and an unknown user get the very same error")
}

func TestRegistryRegister(t *testing.T) {
	var reg Registry
	require.NoError(t, reg.Register("corp", table{}))
	tests := map[string]struct {
		realm string
		a     Authenticator
		want  string
	}{
		"twice":     {"corp", table{}, `realm "corp" is registered twice`},
		"bad name":  {"Corp Users", table{}, `realm name "Corp Users" is invalid`},
		"empty":     {"", table{}, `realm name "" is invalid`},
		"nil value": {"other", nil, `realm "other": the authenticator is nil`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.ErrorContains(t, reg.Register(tc.realm, tc.a), tc.want)
		})
	}
	assert.Equal(t, []string{"corp"}, reg.Realms())
	var none *Registry
	assert.Empty(t, none.Realms())
	_, err := none.Authenticate(context.Background(), Credentials{Username: "a", Password: "b"})
	assert.ErrorContains(t, err, `unknown realm "local"; this manager knows realms: none`)
}

func TestRegistryAuthorize(t *testing.T) {
	var reg Registry
	require.NoError(t, reg.Register(DefaultRealm, table{}))
	require.NoError(t, reg.Register("corp", freezing{}))
	tests := map[string]struct {
		p    Principal
		r    Request
		want string
	}{
		"not an authorizer":    {Principal{Name: "alice"}, Request{Action: ActionInstall, Project: "shop", Env: "prod"}, ""},
		"authorizer allows":    {Principal{Name: "alice", Realm: "corp"}, Request{Action: ActionInstall, Project: "shop", Env: "test"}, ""},
		"authorizer refuses":   {Principal{Name: "alice", Realm: "corp"}, Request{Action: ActionInstall, Project: "shop", Env: "prod"}, `realm "corp" refuses: a change freeze is on until Monday`},
		"realm not registered": {Principal{Name: "alice", Realm: "gone"}, Request{Action: ActionRead, Project: "shop"}, `unknown realm "gone"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := reg.Authorize(context.Background(), tc.p, tc.r)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPrincipalID(t *testing.T) {
	tests := map[string]struct {
		p    Principal
		want string
	}{
		"no realm":      {Principal{Name: "alice"}, "alice"},
		"default realm": {Principal{Name: "alice", Realm: DefaultRealm}, "alice"},
		"other realm":   {Principal{Name: "alice", Realm: "corp"}, "alice@corp"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { assert.Equal(t, tc.want, tc.p.ID()) })
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := Credentials{Username: "alice", Password: "s3cret-pass", Token: "relman_s3cret-token", Realm: "corp", Role: "tester"}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("login", "cred", c)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("login", "cred", c)
	for _, s := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c, c), fmt.Sprintf("%v", &c), c.String(), logged.String(),
	} {
		assert.NotContains(t, s, "s3cret")
		assert.Contains(t, s, "alice")
	}
}
