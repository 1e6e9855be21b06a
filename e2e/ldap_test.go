package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/temporalproto"

	"github.com/relman/relman/harness/ldaptest"
	"github.com/relman/relman/workflows"
)

// TestLDAPRealm: a manager whose only realm is a real slapd. Python's
// xmlrpc.client logs in through the gateway with realm and role; the
// manager, which has no users file, takes the user's realm and roles from
// the gateway's signature, releases, and records alice@corp. With the
// directory down, logins are refused with the server named.
func TestLDAPRealm(t *testing.T) {
	const alicePW, bobPW = "alice-Ldap-e2e-pw", "bob-Ldap-e2e-pw"
	dir := ldaptest.Start(t,
		[]ldaptest.User{{UID: "alice", Password: alicePW}, {UID: "bob", Password: bobPW}},
		[]ldaptest.Group{{CN: "deployers", Members: []string{"alice"}}, {CN: "testers", Members: []string{"alice", "bob"}}})
	port, err := freeTCPPort()
	require.NoError(t, err)
	gateway := fmt.Sprintf("http://127.0.0.1:%d/", port)
	stackDir, _ := miniStack(t, "ldap", "", fmt.Sprintf(`listen_port: %d
logging: {path: logs/manager.log, level: debug}
auth:
  realms:
    corp:
      ldap:
        url: %s
        user_dn: "%s"
        group_base: "%s"
        roles: {cn=deployers: deployer, testers: tester}
policy:
  - {roles: [tester], actions: [install, read], projects: [shop], environments: [test]}
  - {roles: [deployer], actions: [build, install, read], projects: ["*"], environments: ["*"]}
environments: {test: {}, prod: {}}
projects:
  shop: {targets: [web]}
`, port, dir.URL, ldaptest.UserDN, ldaptest.Groups), []string{"test", "prod"})
	waitURL(t, gateway)

	cred := func(user, pw, extra string) string {
		return fmt.Sprintf(`dict(username='%s', password='%s', realm='corp'%s)`, user, pw, extra)
	}
	prod := `dict(project='shop', action='install', env='prod')`

	var tx string
	t.Run("a deployer from LDAP releases to prod, recorded as alice@corp", func(t *testing.T) {
		res, code, msg := xmlrpcCall(t, gateway, `relman.request_action(`+cred("alice", alicePW, "")+`, `+prod+`)`)
		require.Zero(t, code, msg)
		tx = res.(string)
		d, err := final(t, tx)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
		assert.Equal(t, "alice@corp", d.Request.Requester)
		res, code, msg = xmlrpcCall(t, gateway, `relman.query_transaction(`+cred("alice", alicePW, "")+`, '`+tx+`')`)
		require.Zero(t, code, msg)
		assert.Equal(t, "INSTALL_COMPLETED", res)
	})

	t.Run("roles come from groups, and role narrows them", func(t *testing.T) {
		_, code, msg := xmlrpcCall(t, gateway, `relman.request_action(`+cred("bob", bobPW, "")+`, `+prod+`)`)
		assert.Equal(t, 6, code)
		assert.Contains(t, msg, `user bob@corp may not install project "shop" in environment "prod"`)
		_, code, msg = xmlrpcCall(t, gateway, `relman.request_action(`+cred("alice", alicePW, ", role='tester'")+`, `+prod+`)`)
		assert.Equal(t, 6, code)
		assert.Contains(t, msg, `user alice@corp may not install project "shop" in environment "prod"`)
		_, code, msg = xmlrpcCall(t, gateway, `relman.list_projects(`+cred("bob", bobPW, ", role='deployer'")+`)`)
		assert.Equal(t, 3, code)
		assert.Contains(t, msg, `user bob@corp does not have role "deployer" (their roles: tester)`)
	})

	t.Run("wrong password, unknown user and unknown realm", func(t *testing.T) {
		_, code, wrong := xmlrpcCall(t, gateway, `relman.list_projects(`+cred("alice", "not-it", "")+`)`)
		assert.Equal(t, 3, code)
		_, code, unknown := xmlrpcCall(t, gateway, `relman.list_projects(`+cred("mallory", alicePW, "")+`)`)
		assert.Equal(t, 3, code)
		assert.Equal(t, wrong, unknown, "a wrong password and an unknown user get the same answer")
		_, code, msg := xmlrpcCall(t, gateway, `relman.list_projects(dict(username='alice', password='`+alicePW+`', realm='nis'))`)
		assert.Equal(t, 3, code)
		assert.Contains(t, msg, `unknown realm "nis"; this manager knows realms: corp`)
	})

	t.Run("no password in the history or the logs", func(t *testing.T) {
		require.NotEmpty(t, tx)
		h, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(history(t, tx))
		require.NoError(t, err)
		desc, err := env.Client.DescribeWorkflowExecution(context.Background(), tx, "")
		require.NoError(t, err)
		texts := map[string]string{"history": string(h), "description": desc.String()}
		logs, _ := filepath.Glob(filepath.Join(stackDir, "logs", "*"))
		outs, _ := filepath.Glob(filepath.Join(env.Root, "logs", "ldap-*"))
		for _, l := range append(logs, outs...) {
			b, _ := os.ReadFile(l)
			texts[l] = string(b)
		}
		require.Greater(t, len(texts), 2)
		for where, text := range texts {
			for _, pw := range []string{alicePW, bobPW} {
				assert.NotContains(t, text, pw, where)
				assert.NotContains(t, text, base64.StdEncoding.EncodeToString([]byte(pw)), where)
			}
		}
		input := history(t, tx).GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData()
		assert.Contains(t, string(input), `"realm":"corp","roles":["deployer","tester"]`, "the gateway signed alice's realm and roles")
	})

	t.Run("the directory down: logins refused, the server named", func(t *testing.T) {
		dir.Stop()
		_, code, msg := xmlrpcCall(t, gateway, `relman.request_action(`+cred("alice", alicePW, "")+`, `+prod+`)`)
		assert.Equal(t, 5, code)
		assert.Contains(t, msg, `realm "corp" cannot check credentials now: LDAP server `+dir.URL+` does not answer`)
		assert.NotContains(t, msg, alicePW)
	})
}
