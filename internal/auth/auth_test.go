package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPasswordsAndTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	f, err := Load(path)
	require.NoError(t, err)
	require.NoError(t, f.SetPassword("alice", "correct horse", []string{"tester"}))
	token, tok, err := f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	require.NoError(t, f.Save())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	raw, _ := os.ReadFile(path)
	assert.NotContains(t, string(raw), "correct horse")
	assert.NotContains(t, string(raw), strings.TrimPrefix(token, TokenPrefix), "the file keeps no token")

	f, err = Load(path)
	require.NoError(t, err)
	p, err := f.Password("alice", "correct horse")
	require.NoError(t, err)
	assert.Equal(t, Principal{Name: "alice", Roles: []string{"tester"}}, p)
	_, errWrong := f.Password("alice", "wrong")
	_, errUnknown := f.Password("mallory", "correct horse")
	assert.ErrorIs(t, errWrong, ErrDenied)
	assert.Equal(t, errWrong, errUnknown, "a wrong password and an unknown user get the same answer")

	p, err = f.TokenPrincipal(token)
	require.NoError(t, err)
	assert.Equal(t, "bob", p.Name)
	other, _, _ := (&File{Users: map[string]*User{}}).NewToken("bob", nil)
	_, err = f.TokenPrincipal(other)
	assert.ErrorIs(t, err, ErrDenied)
	_, err = f.TokenPrincipal("relman_garbage")
	assert.ErrorIs(t, err, ErrDenied)
	assert.Len(t, tok.ID, 16)

	assert.Error(t, f.SetPassword("Bad Name", "long enough", nil))
	assert.Error(t, f.SetPassword("carol", "short", nil))
}

func TestSignatures(t *testing.T) {
	f := &File{Users: map[string]*User{}}
	require.NoError(t, f.SetPassword("alice", "correct horse", []string{"tester"}))
	token, _, err := f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	key, err := ParseToken(token)
	require.NoError(t, err)
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Now()
	payload := []byte(`{"transaction":"t1","request":{"project":"shop"}}`)

	s := SignWithToken(key, payload, now)
	p, err := f.Verify(secret, s, payload, now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "bob", p.Name)

	cases := map[string]struct {
		sig     Signature
		payload []byte
		at      time.Time
	}{
		"other payload":    {s, []byte(`{"transaction":"t2","request":{"project":"shop"}}`), now},
		"too old":          {s, payload, now.Add(time.Hour)},
		"claims a user":    {func() Signature { x := s; x.User = "alice"; return x }(), payload, now},
		"unknown key":      {func() Signature { x := s; x.KeyID = "0000000000000000"; return x }(), payload, now},
		"forged gateway":   {SignAsGateway([]byte("not-the-secret-not-the-secret-xx"), "alice", payload, now), payload, now},
		"gateway, no user": {SignAsGateway(secret, "mallory", payload, now), payload, now},
		"unknown method":   {Signature{Method: "none", Time: now}, payload, now},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.Verify(secret, tc.sig, tc.payload, tc.at, time.Minute)
			assert.ErrorIs(t, err, ErrBadSignature)
		})
	}
	g := SignAsGateway(secret, "alice", payload, now)
	p, err = f.Verify(secret, g, payload, now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "alice", p.Name)
}

func TestPolicy(t *testing.T) {
	p := Policy{
		{Roles: []string{"tester"}, Actions: []string{ActionInstall, ActionRead}, Projects: []string{"shop"}, Environments: []string{"test", "qa-*"}},
		{Roles: []string{"deployer"}, Actions: []string{ActionBuild, ActionInstall}, Projects: []string{"*"}, Environments: []string{"*"}},
	}
	tester := Principal{Name: "alice", Roles: []string{"tester"}}
	deployer := Principal{Name: "bob", Roles: []string{"deployer"}}
	cases := map[string]struct {
		who                  Principal
		action, project, env string
		want                 bool
	}{
		"tester installs to test":      {tester, ActionInstall, "shop", "test", true},
		"tester installs to qa-2":      {tester, ActionInstall, "shop", "qa-2", true},
		"tester installs to prod":      {tester, ActionInstall, "shop", "prod", false},
		"tester installs another proj": {tester, ActionInstall, "api", "test", false},
		"tester builds":                {tester, ActionBuild, "shop", "", false},
		"deployer installs to prod":    {deployer, ActionInstall, "api", "prod", true},
		"deployer may not approve":     {deployer, ActionApprove, "api", "prod", false},
		"no roles, nothing":            {Principal{Name: "x"}, ActionRead, "shop", "test", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, p.Allowed(tc.who, tc.action, tc.project, tc.env))
		})
	}
	assert.Empty(t, p.Validate())
	assert.Len(t, Policy{{Actions: []string{"deploy"}, Projects: []string{"["}}}.Validate(), 3)
}

func TestLoadSecretMakesOneOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.secret")
	a, err := LoadSecret(path)
	require.NoError(t, err)
	b, err := LoadSecret(path)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.Len(t, a, 32)
	fi, _ := os.Stat(path)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
