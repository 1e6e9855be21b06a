package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relman config check reports every problem of an LDAP realm, each with
// its field, in one run.
func TestConfigCheckRealms(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "manager.yaml")
	require.NoError(t, os.WriteFile(conf, []byte(`version: 1
environments: {test: {}}
projects: {shop: {targets: [web]}}
auth:
  realms:
    corp:
      ldap:
        url: ldap://ldap.example.org
        user_dn: "uid=%s,ou=people,dc=example,dc=org"
        roles: {cn=deployers: deployer}
    Staff: {}
`), 0o644))
	_, stderr, code := run(t, "config", "check", conf)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr, conf+": auth.realms.corp.ldap.group_base: missing; set where the groups are")
	assert.Contains(t, stderr, conf+`: auth.realms.Staff: realm name "Staff" is invalid`)

	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(`version: 1
environments: {test: {}}
projects: {shop: {targets: [web]}}
auth:
  realms:
    corp:
      ldap:
        url: ldap://ldap.example.org
        start_tls: true
        user_dn: "uid=%s,ou=people,dc=example,dc=org"
        group_base: "ou=groups,dc=example,dc=org"
        roles: {cn=deployers: deployer}
`), 0o644))
	stdout, stderr, code := run(t, "config", "check", good)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stdout, "ok (manager)")
	assert.NotContains(t, stdout, "protected")

	// protected: true says what it turns on.
	prot := filepath.Join(dir, "protected.yaml")
	require.NoError(t, os.WriteFile(prot, []byte("version: 1\nenvironments: {test: {}, prod: {protected: true}}\nprojects: {shop: {targets: [web]}}\nauth: {anonymous: true}\n"), 0o644))
	stdout, stderr, code = run(t, "config", "check", prot)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stdout, "environments.prod: protected, so approval: required and four_eyes: true")
	assert.Contains(t, stdout, "only policy rules that name prod")
	assert.NotContains(t, stdout, "environments.test:")
}

// relman version names the commit and the Go and SDK versions it was built
// with, for bug reports and the compatibility check.
func TestVersionNamesCommitGoAndSDK(t *testing.T) {
	defer func(c string) { Commit = c }(Commit)
	Commit = "0123456789abcdef0123456789abcdef01234567"
	stdout, stderr, code := run(t, "version", "-o", "json")
	require.Equal(t, ExitOK, code, stderr)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(stdout), &v))
	assert.Equal(t, Commit, v["commit"])
	assert.Equal(t, runtime.Version(), v["go"])
	assert.Regexp(t, `^v1\.\d+\.\d+`, v["temporal_sdk"])
	stdout, _, _ = run(t, "version")
	assert.Contains(t, stdout, "(commit "+Commit+", "+runtime.Version()+", Temporal Go SDK v1.")
}
