package xmlrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/auth/ldap"
	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/ldaptest"
	"github.com/relman/relman/internal/realm"
)

const (
	ldapAlice = "alice-Ldap-pw-1"
	localBob  = "bob-Local-pw-2"
)

// freeze is a realm registered in code that refuses installs into prod.
type freeze struct{ auth.Authenticator }

func (freeze) Authorize(_ context.Context, _ auth.Principal, r auth.Request) error {
	if r.Action == auth.ActionInstall && r.Env == "prod" {
		return errors.New("a change freeze is on for prod until Monday")
	}
	return nil
}

// realmGateway serves a gateway with three realms: the users file (bob),
// corp on a real slapd (alice: deployer and tester), and frozen, corp's
// directory again behind an Authorizer. down is an LDAP realm whose server
// is not running.
func realmGateway(t *testing.T) (url string, logs *bytes.Buffer, downURL string) {
	t.Helper()
	dir := ldaptest.Start(t, []ldaptest.User{{UID: "alice", Password: ldapAlice}}, []ldaptest.Group{
		{CN: "deployers", Members: []string{"alice"}},
		{CN: "testers", Members: []string{"alice"}},
	})
	ldapConfig := func(url string) *ldap.Config {
		return &ldap.Config{URL: url, UserDN: ldaptest.UserDN, GroupBase: ldaptest.Groups,
			Roles: map[string]string{"deployers": "deployer", "testers": "tester"}}
	}
	users := filepath.Join(t.TempDir(), "users.yaml")
	f, err := auth.Load(users)
	require.NoError(t, err)
	require.NoError(t, f.SetPassword("bob", localBob, []string{"tester"}))
	require.NoError(t, f.Save())
	downURL = fmt.Sprintf("ldap://127.0.0.1:%d", ldaptest.FreePort(t))

	corp, err := ldap.New(*ldapConfig(dir.URL))
	require.NoError(t, err)
	var code auth.Registry
	require.NoError(t, code.Register("frozen", freeze{corp}))
	cfg := &config.Manager{
		Service:      config.Service{Version: config.Version},
		Environments: map[string]config.Environment{"test": {}, "prod": {}},
		Projects:     map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
		Auth: config.Auth{UsersFile: users, Realms: map[string]config.Realm{
			"corp": {LDAP: ldapConfig(dir.URL)}, "down": {LDAP: ldapConfig(downURL)}, "frozen": {},
		}},
		Policy: auth.Policy{
			{Roles: []string{"tester"}, Actions: []string{"install", "read"}, Projects: []string{"shop"}, Environments: []string{"test"}},
			{Roles: []string{"deployer"}, Actions: []string{"build", "install", "read"}, Projects: []string{"*"}, Environments: []string{"*"}},
		},
	}
	cfg.Default()
	require.NoError(t, cfg.Validate())
	realms, err := realm.Registry(cfg.Auth, &code)
	require.NoError(t, err)
	logs = &bytes.Buffer{}
	g := &Gateway{Config: cfg, Realms: realms, Secret: []byte("0123456789abcdef0123456789abcdef"),
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	hs := httptest.NewServer(g.Server())
	t.Cleanup(hs.Close)
	return hs.URL, logs, downURL
}

// Each case is answered before the gateway touches Temporal: logins
// through list_projects, refusals of request_action.
func TestGatewayRealms(t *testing.T) {
	url, logs, downURL := realmGateway(t)
	cred := func(user, password, realm, role string) map[string]any {
		m := map[string]any{"username": user, "password": password}
		if realm != "" {
			m["realm"] = realm
		}
		if role != "" {
			m["role"] = role
		}
		return m
	}
	prod := map[string]any{"project": "shop", "action": "install", "env": "prod"}
	const rejected = "credentials rejected; send {username, password} or {token}"
	tests := map[string]struct {
		method string
		params []any
		code   int
		msg    string
	}{
		"ldap user":                {"list_projects", []any{cred("alice", ldapAlice, "corp", "")}, 0, ""},
		"ldap user with a role":    {"list_projects", []any{cred("alice", ldapAlice, "corp", "tester")}, 0, ""},
		"users file, no realm":     {"list_projects", []any{cred("bob", localBob, "", "")}, 0, ""},
		"users file, named realm":  {"list_projects", []any{cred("bob", localBob, "local", "")}, 0, ""},
		"ldap wrong password":      {"list_projects", []any{cred("alice", "wrong", "corp", "")}, CodeCredentialsRejected, rejected},
		"ldap unknown user":        {"list_projects", []any{cred("mallory", ldapAlice, "corp", "")}, CodeCredentialsRejected, rejected},
		"ldap empty password":      {"list_projects", []any{cred("alice", "", "corp", "")}, CodeCredentialsRejected, rejected},
		"users file wrong":         {"list_projects", []any{cred("bob", "wrong", "", "")}, CodeCredentialsRejected, rejected},
		"ldap user, users file":    {"list_projects", []any{cred("alice", ldapAlice, "", "")}, CodeCredentialsRejected, rejected},
		"unknown realm":            {"list_projects", []any{cred("alice", ldapAlice, "nis", "")}, CodeCredentialsRejected, `unknown realm "nis"; this manager knows realms: corp, down, frozen, local`},
		"realm not a string":       {"list_projects", []any{map[string]any{"username": "alice", "password": ldapAlice, "realm": 7}}, CodeCredentialsRejected, "credentials realm must be a string, not int"},
		"role not held":            {"list_projects", []any{cred("alice", ldapAlice, "corp", "admin")}, CodeCredentialsRejected, `user alice@corp does not have role "admin" (their roles: deployer, tester)`},
		"role, wrong password":     {"list_projects", []any{cred("alice", "wrong", "corp", "admin")}, CodeCredentialsRejected, rejected},
		"ldap down":                {"list_projects", []any{cred("alice", ldapAlice, "down", "")}, CodeInternal, `realm "down" cannot check credentials now: LDAP server ` + downURL + ` does not answer; its logins are refused until it does`},
		"role narrows, forbidden":  {"request_action", []any{cred("alice", ldapAlice, "corp", "tester"), prod}, CodeForbidden, `user alice@corp may not install project "shop" in environment "prod"`},
		"users file, forbidden":    {"request_action", []any{cred("bob", localBob, "", ""), prod}, CodeForbidden, `user bob may not install project "shop" in environment "prod"`},
		"authorizer refuses":       {"request_action", []any{cred("alice", ldapAlice, "frozen", ""), prod}, CodeForbidden, `user alice@frozen may not install project "shop" in environment "prod": realm "frozen" refuses: a change freeze is on for prod until Monday`},
		"ldap down, request":       {"request_action", []any{cred("alice", ldapAlice, "down", ""), prod}, CodeInternal, "LDAP server " + downURL},
		"approval as unknown user": {"approve_transaction", []any{cred("mallory", "x", "corp", ""), "tx"}, CodeCredentialsRejected, rejected},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := rpc(t, url, tc.method, tc.params...)
			if tc.code == 0 {
				require.NoError(t, err)
				assert.Equal(t, []any{"shop"}, v)
				return
			}
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tc.code, f.Code, f.Message)
			assert.Contains(t, f.Message, tc.msg)
			if tc.msg == rejected {
				assert.Equal(t, rejected, f.Message, "every wrong credential gets the very same answer")
			}
			for _, pw := range []string{ldapAlice, localBob} {
				assert.NotContains(t, f.Message, pw)
			}
		})
	}
	require.NotEmpty(t, logs.String(), "the gateway logged its calls")
	assert.Contains(t, logs.String(), "connection refused", "the log has the cause of an outage")
	for _, pw := range []string{ldapAlice, localBob} {
		assert.NotContains(t, logs.String(), pw, "no password in the gateway's log")
	}
}
