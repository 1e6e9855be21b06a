package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// secureStack is a second manager, with authentication on, with its own
// queue, registry, builder and installer host, beside the open one.
type secureStack struct {
	gateway  string
	password string
	token    string // bob's
	carol    string // carol's token: an approver
	queue    string
	dir      string
	// hookSecret is in the URL of the test environment's webhook, which
	// hooks receives.
	hookSecret string
	hooks      *webhookSink
}

// webhookSink records the webhook calls it receives.
type webhookSink struct {
	mu    sync.Mutex
	paths []string
	srv   *httptest.Server
}

func (w *webhookSink) received() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.paths)
}

func startSecure(t *testing.T) *secureStack {
	t.Helper()
	s := &secureStack{password: "alice-Pa55word-e2e", hookSecret: "hOOk-s3cr3t-T0ken", hooks: &webhookSink{}}
	s.hooks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hooks.mu.Lock()
		s.hooks.paths = append(s.hooks.paths, r.URL.RequestURI())
		s.hooks.mu.Unlock()
	}))
	t.Cleanup(s.hooks.srv.Close)
	dir := filepath.Join(env.Root, "secure")
	s.dir = dir
	require.NoError(t, os.MkdirAll(dir, 0o755))
	f, err := auth.Load(filepath.Join(dir, "users.yaml"))
	require.NoError(t, err)
	require.NoError(t, f.SetPassword("alice", s.password, []string{"tester"}))
	s.token, _, err = f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	s.carol, _, err = f.NewToken("carol", []string{"approver"})
	require.NoError(t, err)
	require.NoError(t, f.Save())
	port, err := freeTCPPort()
	require.NoError(t, err)
	s.gateway = fmt.Sprintf("http://127.0.0.1:%d/", port)
	_, s.queue = miniStack(t, "secure", "", fmt.Sprintf(`listen_port: %d
logging: {path: logs/manager.log, level: debug}
artifacts: file://../artifacts
auth: {users_file: users.yaml}
policy:
  - {roles: [tester], actions: [install, read], projects: [shop], environments: [test]}
  - {roles: [deployer], actions: [build, install, cancel, approve, read], projects: ["*"], environments: ["*"]}
  - {roles: [approver], actions: [approve, read], projects: ["*"], environments: ["*"]}
environments:
  test: {webhooks: ["%s/hooks/%s?key=%s"]}
  prod: {}
  gated: {approval: required, four_eyes: true}
  locked: {lock_timeout: 5s}
  vault: {protected: true}
projects:
  shop: {targets: [web]}
`, port, s.hooks.srv.URL, s.hookSecret, s.hookSecret), []string{"test", "prod", "gated", "locked", "vault"})
	waitURL(t, s.gateway)
	return s
}

func waitURL(t *testing.T, url string) {
	t.Helper()
	require.Eventually(t, func() bool {
		out, err := exec.Command("python3", "-c", "import xmlrpc.client,sys; xmlrpc.client.ServerProxy(sys.argv[1]).system.listMethods()", url).CombinedOutput()
		return err == nil && len(out) == 0
	}, 30*time.Second, 200*time.Millisecond)
}

// xmlrpcCall runs one call from Python and returns its result or fault.
func xmlrpcCall(t *testing.T, url, expr string) (result any, faultCode int, faultString string) {
	t.Helper()
	script := `
import json, sys, xmlrpc.client
relman = xmlrpc.client.ServerProxy(sys.argv[1])
try:
    print(json.dumps({"result": ` + expr + `}, default=str))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": f.faultCode, "string": f.faultString}))
`
	out, err := exec.Command("python3", "-c", script, url).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var r struct {
		Result any    `json:"result"`
		Fault  int    `json:"fault"`
		String string `json:"string"`
	}
	require.NoError(t, json.Unmarshal(out, &r), "%s", out)
	return r.Result, r.Fault, r.String
}

func TestAuthentication(t *testing.T) {
	s := startSecure(t)
	test := `dict(project='shop', action='install', env='test')`
	prod := `dict(project='shop', action='install', env='prod')`

	t.Run("XML-RPC without or with wrong credentials gets a fault", func(t *testing.T) {
		_, code, msgNone := xmlrpcCall(t, s.gateway, `relman.request_action({}, `+test+`)`)
		assert.Equal(t, 3, code)
		_, code, msgWrong := xmlrpcCall(t, s.gateway, `relman.request_action(dict(username='alice', password='wrong'), `+test+`)`)
		assert.Equal(t, 3, code)
		_, code, msgUnknown := xmlrpcCall(t, s.gateway, `relman.request_action(dict(username='mallory', password='`+s.password+`'), `+test+`)`)
		assert.Equal(t, 3, code)
		assert.Equal(t, msgWrong, msgUnknown, "an unknown user and a wrong password get the same answer")
		assert.Equal(t, msgNone, msgWrong)
		_, code, _ = xmlrpcCall(t, s.gateway, `relman.query_transaction('anything')`)
		assert.Equal(t, 3, code, "reads need credentials too")
	})

	var aliceTx string
	t.Run("a tester may install to test, not to prod", func(t *testing.T) {
		cred := `dict(username='alice', password='` + s.password + `')`
		_, code, msg := xmlrpcCall(t, s.gateway, `relman.request_action(`+cred+`, `+prod+`)`)
		assert.Equal(t, 6, code)
		assert.Contains(t, msg, `alice may not install project "shop" in environment "prod"`)
		res, code, msg := xmlrpcCall(t, s.gateway, `relman.request_action(`+cred+`, `+test+`)`)
		require.Zero(t, code, msg)
		aliceTx = res.(string)
		d, err := final(t, aliceTx)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
		assert.Equal(t, "alice", d.Request.Requester)
		res, code, _ = xmlrpcCall(t, s.gateway, `relman.query_transaction(`+cred+`, '`+aliceTx+`')`)
		require.Zero(t, code)
		assert.Equal(t, "INSTALL_COMPLETED", res)
	})

	t.Run("the CLI signs with its token; a wrong or missing token is refused", func(t *testing.T) {
		cliWith := func(token string) (string, string, int) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code := cli.Execute(ctx, []string{"release", "shop", "--env", "prod", "--wait", "--address", env.Address, "--manager-queue", s.queue}, cli.Options{
				Stdout: &out, Stderr: &errb,
				LookupEnv: func(k string) (string, bool) {
					switch k {
					case "RELMAN_TOKEN":
						return token, token != ""
					case "RELMAN_REQUESTER":
						return "mallory", true
					}
					return os.LookupEnv(k)
				},
			})
			return out.String(), errb.String(), code
		}
		stranger, _, err := (&auth.File{Users: map[string]*auth.User{}}).NewToken("bob", nil)
		require.NoError(t, err)
		for name, token := range map[string]string{"wrong token": stranger, "no token": ""} {
			_, errOut, code := cliWith(token)
			assert.Equal(t, cli.ExitReleaseFailed, code, "%s: %s", name, errOut)
			assert.Contains(t, errOut, "REJECTED", name)
			assert.Contains(t, errOut, "not authenticated", name)
		}
		out, errOut, code := cliWith(s.token)
		require.Equal(t, cli.ExitOK, code, errOut)
		assert.Contains(t, out, "INSTALL_COMPLETED")
		txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
		d, err := final(t, txid)
		require.NoError(t, err)
		assert.Equal(t, "bob", d.Request.Requester, "the manager records who signed, not who the client claimed")
		assertSecretsAbsent(t, txid, s.token)
	})

	t.Run("a forged identity gets nowhere", func(t *testing.T) {
		for name, sig := range map[string]*auth.Signature{
			"unsigned, claiming bob": nil,
			"forged gateway":         {Method: "gateway", User: "bob", Time: time.Now(), Value: base64.StdEncoding.EncodeToString([]byte("forged"))},
		} {
			run, err := env.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: s.queue}, workflows.ReleaseWorkflowName,
				workflows.ReleaseInput{Request: workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "prod", Requester: "bob"}, Signature: sig})
			require.NoError(t, err)
			d, err := final(t, run.GetID())
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app, name)
			assert.Equal(t, workflows.StatusRejected, d.Status, name)
			assert.Contains(t, d.Reason, "not authenticated", name)
		}
	})

	t.Run("no secret in any history or log", func(t *testing.T) {
		require.NotEmpty(t, aliceTx)
		assertSecretsAbsent(t, aliceTx, s.password)
	})

	t.Run("a transaction Temporal forgot is read from its record, with credentials", func(t *testing.T) {
		require.NotEmpty(t, aliceTx)
		forget(t, aliceTx)
		cred := `dict(username='alice', password='` + s.password + `')`
		res, code, msg := xmlrpcCall(t, s.gateway, `relman.query_transaction(`+cred+`, '`+aliceTx+`')`)
		require.Zero(t, code, msg)
		assert.Equal(t, "INSTALL_COMPLETED", res)
		_, code, _ = xmlrpcCall(t, s.gateway, `relman.query_transaction('`+aliceTx+`')`)
		assert.Equal(t, 3, code, "a record is read with credentials, as the transaction was")
	})
}

// assertSecretsAbsent dumps the transaction's whole history, and every log
// of the secure stack, and looks for the secret, plain or base64.
func assertSecretsAbsent(t *testing.T, txid, secret string) {
	t.Helper()
	h, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(history(t, txid))
	require.NoError(t, err)
	forms := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), strings.TrimPrefix(secret, auth.TokenPrefix)}
	for _, f := range forms {
		assert.NotContains(t, string(h), f, "history of %s", txid)
	}
	// Search attributes and memo are in the description.
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), txid, "")
	require.NoError(t, err)
	assert.NotContains(t, desc.String(), secret)
	// The transaction's closed-transaction record: its index and the
	// record it names.
	var rec workflows.RecordResult
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, env.Client.GetWorkflow(ctx, recorderID(t, txid), "").Get(ctx, &rec), "the secure manager records its transactions")
	idx, err := os.ReadFile(filepath.Join(env.Root, "artifacts", filepath.FromSlash(rec.Key)))
	require.NoError(t, err)
	var ix struct {
		Body struct {
			Record struct{ Key string } `json:"record"`
		} `json:"body"`
	}
	require.NoError(t, json.Unmarshal(idx, &ix))
	body, err := os.ReadFile(filepath.Join(env.Root, "artifacts", filepath.FromSlash(ix.Body.Record.Key)))
	require.NoError(t, err)
	for _, f := range forms {
		assert.NotContains(t, string(idx), f, "record index of %s", txid)
		assert.NotContains(t, string(body), f, "record of %s", txid)
	}
	logs, _ := filepath.Glob(filepath.Join(env.Root, "secure", "logs", "*"))
	logs2, _ := filepath.Glob(filepath.Join(env.Root, "logs", "secure-*"))
	for _, l := range append(logs, logs2...) {
		b, _ := os.ReadFile(l)
		for _, f := range forms {
			assert.NotContains(t, string(b), f, "log %s", l)
		}
	}
}

// TestAuthenticatedApproval: with authentication on, who approves is who
// signed the decision; the policy decides who may, and four eyes compares
// signers, not claimed names.
func TestAuthenticatedApproval(t *testing.T) {
	s := startSecure(t)
	run := func(token, requester string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		code := cli.Execute(ctx, append(args, "--address", env.Address, "--manager-queue", s.queue), cli.Options{
			Stdout: &out, Stderr: &errb,
			LookupEnv: func(k string) (string, bool) {
				switch k {
				case "RELMAN_TOKEN":
					return token, token != ""
				case "RELMAN_REQUESTER":
					return requester, true
				}
				return os.LookupEnv(k)
			},
		})
		return out.String(), errb.String(), code
	}
	out, errOut, code := run(s.token, "bob", "release", "shop", "--env", "gated")
	require.Equal(t, cli.ExitOK, code, errOut)
	txid := strings.TrimSpace(out)
	require.Eventually(t, func() bool {
		o, _, _ := relman(t, "status", txid, "--manager-queue", s.queue)
		return strings.TrimSpace(o) == string(workflows.StatusAwaitingApproval)
	}, time.Minute, 200*time.Millisecond)

	// bob requested it: four eyes refuses him, whatever name he claims.
	_, errOut, code = run(s.token, "someone-else", "approve", txid)
	assert.NotEqual(t, cli.ExitOK, code)
	assert.Contains(t, errOut, "four eyes")
	// alice may not approve (policy), through the gateway.
	_, fcode, msg := xmlrpcCall(t, s.gateway, `relman.approve_transaction(dict(username='alice', password='`+s.password+`'), '`+txid+`')`)
	assert.NotZero(t, fcode)
	assert.Contains(t, msg, "may not approve")
	// No token, claiming to be carol: not authenticated.
	_, errOut, code = run("", "carol", "approve", txid)
	assert.NotEqual(t, cli.ExitOK, code)
	assert.Contains(t, errOut, "not authenticated")
	// carol, signed: approved, and recorded as carol.
	out, errOut, code = run(s.carol, "whoever", "approve", txid, "--comment", "looks right")
	require.Equal(t, cli.ExitOK, code, errOut)
	d, err := final(t, txid)
	require.NoError(t, err)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	require.NotNil(t, d.Approval)
	assert.Equal(t, "carol", d.Approval.By)
	assert.Equal(t, "bob", d.Request.Requester)
	assertSecretsAbsent(t, txid, s.carol)
}
