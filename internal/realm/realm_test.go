package realm

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/auth/ldap"
	"github.com/relman/relman/config"
)

type nobody struct{}

func (nobody) Authenticate(context.Context, auth.Credentials) (auth.Principal, error) {
	return auth.Principal{}, auth.ErrDenied
}

func TestRegistry(t *testing.T) {
	corp := &ldap.Config{URL: "ldaps://ldap.example.org", UserDN: "uid=%s,ou=people,dc=example,dc=org", GroupBase: "ou=groups,dc=example,dc=org", Roles: map[string]string{"deployers": "deployer"}}
	users := filepath.Join(t.TempDir(), "users.yaml")
	code := func(names ...string) *auth.Registry {
		r := &auth.Registry{}
		for _, n := range names {
			require.NoError(t, r.Register(n, nobody{}))
		}
		return r
	}
	tests := map[string]struct {
		auth   config.Auth
		code   *auth.Registry
		realms []string
		err    string
	}{
		"users file only": {auth: config.Auth{UsersFile: users}, realms: []string{"local"}},
		"users file, ldap and code": {
			auth:   config.Auth{UsersFile: users, Realms: map[string]config.Realm{"corp": {LDAP: corp}, "htpasswd": {}}},
			code:   code("htpasswd"),
			realms: []string{"corp", "htpasswd", "local"},
		},
		"ldap without users file": {auth: config.Auth{Realms: map[string]config.Realm{"corp": {LDAP: corp}}}, realms: []string{"corp"}},
		"empty realm, nothing in code": {
			auth: config.Auth{Realms: map[string]config.Realm{"htpasswd": {}}},
			err:  "auth.realms htpasswd: no ldap settings, and this manager binary registers no authenticator under that name (it registers: none)",
		},
		"code realm not in config": {
			auth: config.Auth{UsersFile: users},
			code: code("htpasswd"),
			err:  "realm(s) htpasswd registered in code are not in the config; list each under auth.realms as `htpasswd: {}`",
		},
		"ldap and code under one name": {
			auth: config.Auth{Realms: map[string]config.Realm{"corp": {LDAP: corp}}},
			code: code("corp"),
			err:  "auth.realms.corp: the realm has ldap settings and is registered in code too",
		},
		"code takes the users file's name": {
			auth: config.Auth{UsersFile: users},
			code: code("local"),
			err:  `realm "local" is the users file's`,
		},
		"bad ldap": {
			auth: config.Auth{Realms: map[string]config.Realm{"corp": {LDAP: &ldap.Config{URL: "ldaps://x"}}}},
			err:  "auth.realms.corp: ldap realm: user_dn: missing",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reg, err := Registry(tc.auth, tc.code)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.realms, reg.Realms())
		})
	}
}
