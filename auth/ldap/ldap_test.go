package ldap_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/auth/ldap"
	"github.com/relman/relman/harness/ldaptest"
)

const (
	alicePassword = "alice-Ldap-pw-1"
	bobPassword   = "bob-Ldap-pw-2"
	eve           = "eve-Ldap-pw-3"
)

// directory is a real slapd holding alice (deployers, testers), bob
// (testers, as a posixGroup member) and eve (no group relman knows).
func directory(t *testing.T) *ldaptest.Server {
	return ldaptest.Start(t,
		[]ldaptest.User{{UID: "alice", Password: alicePassword}, {UID: "bob", Password: bobPassword}, {UID: "eve", Password: eve}},
		[]ldaptest.Group{
			{CN: "deployers", Members: []string{"alice"}},
			{CN: "testers", Members: []string{"alice"}},
			{CN: "qa", Members: []string{"bob"}, Posix: true},
			{CN: "staff", Members: []string{"eve"}},
		})
}

func config(url string) ldap.Config {
	return ldap.Config{
		URL:       url,
		UserDN:    ldaptest.UserDN,
		GroupBase: ldaptest.Groups,
		Roles: map[string]string{
			"cn=deployers":                  "deployer", // first RDN
			"CN=Testers," + ldaptest.Groups: "tester",   // full DN, another case
			"qa":                            "tester",   // cn alone
		},
	}
}

func TestLDAPBindAndGroups(t *testing.T) {
	dir := directory(t)
	a, err := ldap.New(config(dir.URL))
	require.NoError(t, err)
	ctx := context.Background()
	tests := map[string]struct {
		cred  auth.Credentials
		name  string
		roles []string
	}{
		"groupOfNames member":  {auth.Credentials{Username: "alice", Password: alicePassword}, "alice", []string{"deployer", "tester"}},
		"posixGroup memberUid": {auth.Credentials{Username: "bob", Password: bobPassword}, "bob", []string{"tester"}},
		"no mapped group":      {auth.Credentials{Username: "eve", Password: eve}, "eve", nil},
		"name in capitals":     {auth.Credentials{Username: "ALICE", Password: alicePassword}, "alice", []string{"deployer", "tester"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, tc.cred)
			require.NoError(t, err)
			assert.Equal(t, tc.name, p.Name)
			assert.Equal(t, tc.roles, p.Roles)
		})
	}
}

// Every wrong credential gets the very same answer, and none is a bind
// that succeeds: an empty password would be LDAP's unauthenticated bind.
func TestLDAPDenied(t *testing.T) {
	dir := directory(t)
	a, err := ldap.New(config(dir.URL))
	require.NoError(t, err)
	tests := map[string]auth.Credentials{
		"wrong password":        {Username: "alice", Password: "not-her-password"},
		"unknown user":          {Username: "mallory", Password: alicePassword},
		"empty password":        {Username: "alice"},
		"empty user":            {Password: alicePassword},
		"DN injection":          {Username: "alice,ou=people", Password: alicePassword},
		"filter characters":     {Username: "*", Password: alicePassword},
		"leading space":         {Username: " alice", Password: alicePassword},
		"token, not a password": {Username: "alice", Token: "relman_x"},
	}
	for name, cred := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := a.Authenticate(context.Background(), cred)
			assert.Same(t, auth.ErrDenied, err, "%v", err)
		})
	}
}

// A directory that cannot be reached refuses every login with an error
// naming it, before and after it was up.
func TestLDAPUnreachable(t *testing.T) {
	dir := directory(t)
	a, err := ldap.New(config(dir.URL))
	require.NoError(t, err)
	_, err = a.Authenticate(context.Background(), auth.Credentials{Username: "alice", Password: alicePassword})
	require.NoError(t, err)
	dir.Stop()

	never := fmt.Sprintf("ldap://127.0.0.1:%d", ldaptest.FreePort(t))
	b, err := ldap.New(config(never))
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		a   *ldap.Authenticator
		url string
	}{
		"stopped":  {a, dir.URL},
		"never up": {b, never},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.a.Authenticate(context.Background(), auth.Credentials{Username: "alice", Password: alicePassword})
			require.Error(t, err)
			assert.ErrorIs(t, err, auth.ErrUnavailable)
			var u *auth.UnavailableError
			require.True(t, errors.As(err, &u))
			assert.Equal(t, "LDAP server "+tc.url, u.Server)
			assert.NotContains(t, err.Error(), alicePassword)
		})
	}
	// Through a registry: the realm, the server, and a refusal.
	var reg auth.Registry
	require.NoError(t, reg.Register("corp", b))
	_, err = reg.Authenticate(context.Background(), auth.Credentials{Username: "alice", Password: alicePassword, Realm: "corp"})
	assert.ErrorContains(t, err, `realm "corp" cannot check credentials now: LDAP server `+never+` does not answer`)
}

func TestLDAPConfigCheck(t *testing.T) {
	tests := map[string]struct {
		edit func(*ldap.Config)
		want []string // field: message parts
	}{
		"good": {func(*ldap.Config) {}, nil},
		"nothing": {func(c *ldap.Config) { *c = ldap.Config{} }, []string{
			"url: missing", "user_dn: missing", "group_base: missing", "roles: none"}},
		"http url":         {func(c *ldap.Config) { c.URL = "http://dir" }, []string{`url: "http://dir" is not an ldap:// or ldaps:// URL`}},
		"no %s":            {func(c *ldap.Config) { c.UserDN = "uid=alice,dc=x" }, []string{"user_dn: ", "must hold %s exactly once"}},
		"two %s":           {func(c *ldap.Config) { c.UserDN = "uid=%s,cn=%s" }, []string{"must hold %s exactly once"}},
		"bad DN":           {func(c *ldap.Config) { c.UserDN = "uid=%s,,==" }, []string{"user_dn: ", "is not a DN"}},
		"bad group base":   {func(c *ldap.Config) { c.GroupBase = "groups" }, []string{"group_base: ", "is not a DN"}},
		"filter w/o user":  {func(c *ldap.Config) { c.GroupFilter = "(objectClass=groupOfNames)" }, []string{"group_filter: ", "names neither {dn} nor {user}"}},
		"bad filter":       {func(c *ldap.Config) { c.GroupFilter = "(member={dn}" }, []string{"group_filter: ", "is not an LDAP filter"}},
		"ldaps + starttls": {func(c *ldap.Config) { c.URL, c.StartTLS = "ldaps://dir", true }, []string{"start_tls: "}},
		"empty role":       {func(c *ldap.Config) { c.Roles = map[string]string{"admins": ""} }, []string{"roles.admins: the role is empty"}},
		"bad group DN":     {func(c *ldap.Config) { c.Roles = map[string]string{"cn=a,,=": "x"} }, []string{"roles.cn=a,,=: ", "neither a group's cn nor a DN"}},
		"negative timeout": {func(c *ldap.Config) { c.Timeout = -1 }, []string{"timeout: -1ns is negative"}},
		"plain ldap":       {func(c *ldap.Config) { c.StartTLS = false }, []string{"url: ", "would send passwords in clear", "ldaps:// or set start_tls"}},
		"plain loopback":   {func(c *ldap.Config) { c.URL, c.StartTLS = "ldap://127.0.0.1:3389", false }, nil},
		"plain localhost":  {func(c *ldap.Config) { c.URL, c.StartTLS = "ldap://localhost", false }, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := config("ldap://dir.example.org")
			c.StartTLS = true
			tc.edit(&c)
			var got []string
			for _, p := range c.Check() {
				got = append(got, p.Field+": "+p.Msg)
			}
			all := strings.Join(got, "\n")
			if tc.want == nil {
				assert.Empty(t, got)
				return
			}
			for _, w := range tc.want {
				assert.Contains(t, all, w)
			}
			_, err := ldap.New(c)
			assert.Error(t, err, "New refuses what Check reports")
		})
	}
}

// TLS is verified against ca_file: ldaps and StartTLS log in; without the
// CA the server's certificate is refused, and so is the login.
func TestLDAPTLS(t *testing.T) {
	dir := ldaptest.StartTLS(t, []ldaptest.User{{UID: "alice", Password: alicePassword}}, []ldaptest.Group{{CN: "deployers", Members: []string{"alice"}}})
	tests := map[string]struct {
		edit func(*ldap.Config)
		ok   bool
	}{
		"ldaps with the CA":     {func(c *ldap.Config) { c.URL, c.CAFile = dir.LDAPS, dir.CAFile }, true},
		"start_tls with the CA": {func(c *ldap.Config) { c.StartTLS, c.CAFile = true, dir.CAFile }, true},
		"ldaps, system CAs":     {func(c *ldap.Config) { c.URL = dir.LDAPS }, false},
		"start_tls, system CAs": {func(c *ldap.Config) { c.StartTLS = true }, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := config(dir.URL)
			tc.edit(&c)
			a, err := ldap.New(c)
			require.NoError(t, err)
			p, err := a.Authenticate(context.Background(), auth.Credentials{Username: "alice", Password: alicePassword})
			if tc.ok {
				require.NoError(t, err)
				assert.Equal(t, []string{"deployer"}, p.Roles)
				return
			}
			assert.ErrorIs(t, err, auth.ErrUnavailable)
			assert.ErrorContains(t, err, "certificate")
		})
	}
}
