package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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
	assert.Equal(t, Principal{Name: "alice", Roles: []string{"tester"}, Realm: "local"}, p)
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
	alice := Principal{Name: "alice", Roles: []string{"tester"}, Realm: "local"}
	carol := Principal{Name: "carol", Roles: []string{"deployer"}, Realm: "corp"}
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
		"forged gateway":   {SignAsGateway([]byte("not-the-secret-not-the-secret-xx"), alice, payload, now), payload, now},
		"gateway, no user": {SignAsGateway(secret, Principal{Name: "mallory", Roles: []string{"tester"}}, payload, now), payload, now},
		"unknown method":   {Signature{Method: "none", Time: now}, payload, now},
		"role added": {func() Signature {
			x := SignAsGateway(secret, alice, payload, now)
			x.Roles = []string{"tester", "deployer"}
			return x
		}(), payload, now},
		"realm changed": {func() Signature { x := SignAsGateway(secret, carol, payload, now); x.Realm = "other"; return x }(), payload, now},
		"realm stripped": {func() Signature {
			x := SignAsGateway(secret, carol, payload, now)
			x.Realm, x.Roles = "", nil
			return x
		}(), payload, now},
		"role not in file": {SignAsGateway(secret, Principal{Name: "alice", Roles: []string{"deployer"}, Realm: "local"}, payload, now), payload, now},
		"bad realm name":   {SignAsGateway(secret, Principal{Name: "alice", Realm: "Not A Realm"}, payload, now), payload, now},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.Verify(secret, tc.sig, tc.payload, tc.at, time.Minute)
			assert.ErrorIs(t, err, ErrBadSignature)
		})
	}
	g := SignAsGateway(secret, alice, payload, now)
	p, err = f.Verify(secret, g, payload, now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, alice, p)

	// A user of another realm is not in the users file: the signed realm
	// and roles are all the manager has, and all it needs.
	g = SignAsGateway(secret, carol, payload, now)
	p, err = f.Verify(secret, g, payload, now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, carol, p)
	assert.Equal(t, "carol@corp", p.ID())

	// A role narrowed by the credentials stays narrowed.
	require.NoError(t, f.SetPassword("dave", "correct horse", []string{"tester", "deployer"}))
	p, err = f.Verify(secret, SignAsGateway(secret, Principal{Name: "dave", Roles: []string{"tester"}}, payload, now), payload, now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{"tester"}, p.Roles)

	// Signatures from before expiries (v1, v2) are refused, though their
	// value checks out: nothing bounds how long they could be used.
	v1 := Signature{Method: "gateway", User: "alice", Time: now.UTC()}
	m := hmac.New(sha256.New, secret)
	m.Write(signed(v1, payload))
	v1.Value = base64.StdEncoding.EncodeToString(m.Sum(nil))
	_, err = f.Verify(secret, v1, payload, now, time.Minute)
	assert.ErrorIs(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "no expiry")
}

// TestSignatureExpires: a signature is refused after its expiry, and its
// expiry cannot be moved without breaking it.
func TestSignatureExpires(t *testing.T) {
	f := &File{Users: map[string]*User{}}
	token, _, err := f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	key, err := ParseToken(token)
	require.NoError(t, err)
	now := time.Now()
	payload := []byte("start")
	s := SignWithToken(key, payload, now)
	assert.Equal(t, now.UTC().Add(SignatureTTL), s.Expires)
	_, err = f.Verify(nil, s, payload, now.Add(SignatureTTL-time.Second), time.Hour)
	require.NoError(t, err)
	_, err = f.Verify(nil, s, payload, now.Add(SignatureTTL+time.Second), time.Hour)
	require.ErrorIs(t, err, ErrBadSignature)
	assert.Contains(t, err.Error(), "expired")
	longer := s
	longer.Expires = s.Expires.Add(time.Hour)
	_, err = f.Verify(nil, longer, payload, now.Add(SignatureTTL+time.Second), time.Hour)
	assert.ErrorIs(t, err, ErrBadSignature, "a moved expiry breaks the signature")
	assert.Equal(t, "token:"+s.KeyID, s.Signer())
	g := SignAsGateway([]byte("0123456789abcdef0123456789abcdef"), Principal{Name: "carol", Realm: "corp"}, payload, now)
	assert.Equal(t, "gateway:carol@corp", g.Signer())
	assert.Equal(t, "gateway:alice@local", GatewaySigner(Principal{Name: "alice"}))
}

func TestUsersFileAuthenticator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.yaml")
	f, err := Load(path)
	require.NoError(t, err)
	require.NoError(t, f.SetPassword("alice", "correct horse", []string{"tester"}))
	token, _, err := f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	require.NoError(t, f.Save())
	ctx := context.Background()
	u := UsersFile{Path: path}
	tests := map[string]struct {
		cred Credentials
		want string
		err  error
	}{
		"password":       {Credentials{Username: "alice", Password: "correct horse"}, "alice", nil},
		"token":          {Credentials{Token: token}, "bob", nil},
		"wrong password": {Credentials{Username: "alice", Password: "wrong"}, "", ErrDenied},
		"nothing":        {Credentials{}, "", ErrDenied},
		"bad token":      {Credentials{Token: "relman_nope"}, "", ErrDenied},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := u.Authenticate(ctx, tc.cred)
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, p.Name)
			assert.Equal(t, DefaultRealm, p.Realm)
		})
	}
	// A users file that cannot be read is an outage: refused, not denied.
	_, err = UsersFile{Path: t.TempDir()}.Authenticate(ctx, Credentials{Username: "alice", Password: "correct horse"})
	assert.ErrorIs(t, err, ErrUnavailable, "a directory where the file should be")
}

func TestPolicy(t *testing.T) {
	p := Policy{
		{Roles: []string{"tester"}, Actions: []string{ActionInstall, ActionRead}, Projects: []string{"shop"}, Environments: []string{"test", "qa-*"}},
		{Roles: []string{"deployer"}, Actions: []string{ActionBuild, ActionInstall}, Projects: []string{"*"}, Environments: []string{"*"}},
		{Roles: []string{"oncall"}, Actions: []string{ActionRollback}, Projects: []string{"*"}, Environments: []string{"prod"}},
	}
	tester := Principal{Name: "alice", Roles: []string{"tester"}}
	oncall := Principal{Name: "carol", Roles: []string{"oncall"}}
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
		"install grants rollback":      {deployer, ActionRollback, "api", "prod", true},
		"oncall rolls back prod":       {oncall, ActionRollback, "api", "prod", true},
		"rollback is not install":      {oncall, ActionInstall, "api", "prod", false},
		"oncall only in prod":          {oncall, ActionRollback, "api", "test", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, p.Allowed(tc.who, tc.action, tc.project, tc.env))
		})
	}
	assert.Empty(t, p.Validate())
	assert.Len(t, Policy{{Actions: []string{"deploy"}, Projects: []string{"["}}}.Validate(), 3)
}
