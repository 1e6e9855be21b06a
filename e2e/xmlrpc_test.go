package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workflows"
)

// pythonClient runs e2e/testdata/xmlrpc_client.py (Python's own
// xmlrpc.client, the seed's clients) against the manager's gateway and
// decodes the JSON it prints. args follow the URL.
func pythonClient(t *testing.T, mode, gatewayURL string, out any, args ...string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is needed for the XML-RPC tests")
		}
		t.Skip("no python3")
	}
	waitGateway(t)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "testdata", "xmlrpc_client.py")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, py, append([]string{script, mode, gatewayURL}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "python client %s:\n%s", mode, stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), stdout.String())
}

// waitGateway waits for the manager process to open its gateway port.
func waitGateway(t *testing.T) {
	t.Helper()
	u, err := url.Parse(env.gatewayURL)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			return
		}
		require.True(t, time.Now().Before(deadline), "gateway %s not listening: %v", env.gatewayURL, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// TestXMLRPCSeedSession is the seed's README session, unchanged, from
// Python: request an install, poll query_transaction to INSTALL_COMPLETED,
// read the history.
func TestXMLRPCSeedSession(t *testing.T) {
	var r struct {
		TransID          string   `json:"trans_id"`
		First            string   `json:"first"`
		Seen             []string `json:"seen"`
		Final            string   `json:"final"`
		HistoryType      string   `json:"history_type"`
		HistoryItemTypes []string `json:"history_item_types"`
		HistoryTimeTypes []string `json:"history_time_types"`
		History          []struct {
			Time   string `json:"time"`
			Event  string `json:"event"`
			Detail string `json:"detail"`
		} `json:"history"`
		HistoryWithCredentials int `json:"history_with_credentials"`
	}
	// No path in the URL: Python posts to /RPC2, as the seed's clients did.
	pythonClient(t, "session", strings.TrimSuffix(env.gatewayURL, "/"), &r)

	require.NotEmpty(t, r.TransID)
	assert.Contains(t, []string{"STARTED", "BUILD_COMPLETED", "INSTALL_COMPLETED"}, r.First)
	assert.Equal(t, "INSTALL_COMPLETED", r.Final)
	last := -1
	for _, s := range r.Seen {
		i := slices.Index([]string{"STARTED", "BUILD_COMPLETED", "INSTALL_COMPLETED"}, s)
		require.GreaterOrEqual(t, i, 0, "unexpected status %s in %v", s, r.Seen)
		require.Greater(t, i, last, "status went backwards: %v", r.Seen)
		last = i
	}

	assert.Equal(t, "list", r.HistoryType)
	assert.Equal(t, []string{"dict"}, r.HistoryItemTypes)
	assert.Equal(t, []string{"DateTime"}, r.HistoryTimeTypes, "times are dateTime.iso8601")
	require.NotEmpty(t, r.History)
	assert.Equal(t, len(r.History), r.HistoryWithCredentials)
	assert.Equal(t, "requested", r.History[0].Event)
	assert.Contains(t, r.History[0].Detail, "install of shop from trunk into test")
	// Who asked is the requester the transaction recorded with STARTED
	// (with authentication off, the credentials' username).
	started := false
	for _, h := range r.History {
		if h.Event == "status STARTED" {
			started = true
			assert.Equal(t, "requested by py-tester", h.Detail)
		}
	}
	assert.True(t, started, "the history has STARTED")
	assert.Regexp(t, `^\d{8}T\d{2}:\d{2}:\d{2}$`, r.History[0].Time)
	var events []string
	for _, h := range r.History {
		events = append(events, h.Event)
	}
	assert.Contains(t, events, "status INSTALL_COMPLETED")
	assert.Equal(t, "ended", events[len(events)-1])

	// The requester came from credentials; the password went nowhere.
	d, err := transaction.Get(context.Background(), env.Client, r.TransID)
	require.NoError(t, err)
	assert.Equal(t, "py-tester", d.Request.Requester)
	assert.Equal(t, workflows.Selector{Trunk: true}, d.Request.Source)
	assertNoPassword(t, r.TransID, "request_action")
}

// assertNoPassword checks the password Python sent is in no log of the
// manager and nowhere in the transaction's workflow history, and that the
// manager logged the call of method.
func assertNoPassword(t *testing.T, txid, method string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(env.Root, "logs", "manager.*"))
	require.NotEmpty(t, logs)
	calls := false
	for _, f := range logs {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.False(t, strings.Contains(string(b), "hunter2"), "the password is in %s", f)
		calls = calls || strings.Contains(string(b), `msg="xml-rpc call" role=manager component=xml-rpc method=`+method)
	}
	assert.True(t, calls, "the gateway logs its calls in the manager's log")
	it := env.Client.GetWorkflowHistory(context.Background(), txid, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		b, err := json.Marshal(ev)
		require.NoError(t, err)
		assert.False(t, strings.Contains(string(b), "hunter2"), "the password is in the workflow history")
	}
}

type pyFault struct {
	Code   int    `json:"faultCode"`
	String string `json:"faultString"`
}

type pyCall struct {
	Result any      `json:"result"`
	Fault  *pyFault `json:"fault"`
}

type pyRaw struct {
	Status int      `json:"status"`
	Fault  *pyFault `json:"fault"`
}

func TestXMLRPCMethodsAndFaults(t *testing.T) {
	var r struct {
		ListProjects      []string `json:"list_projects"`
		ListRegistrations []struct {
			Role     string              `json:"role"`
			ID       string              `json:"id"`
			Projects []string            `json:"projects"`
			Targets  map[string][]string `json:"targets"`
			Renewed  string              `json:"renewed"`
			Expires  string              `json:"expires"`
		} `json:"list_registrations"`
		UnknownKey           pyCall   `json:"unknown_key"`
		UnknownProject       pyCall   `json:"unknown_project"`
		UnknownTransaction   pyCall   `json:"unknown_transaction"`
		UnknownTxHistory     pyCall   `json:"unknown_transaction_history"`
		RegistryIsNoTx       pyCall   `json:"registry_is_no_transaction"`
		WrongType            pyCall   `json:"wrong_type"`
		UnknownMethod        pyCall   `json:"unknown_method"`
		ListMethods          []string `json:"list_methods"`
		MethodHelp           string   `json:"method_help"`
		MethodSignature      [][]string
		MethodSignatureRaw   json.RawMessage `json:"method_signature"`
		RequestID            string          `json:"request_id"`
		RequestIDFirst       string          `json:"request_id_first"`
		RequestIDSecond      string          `json:"request_id_second"`
		Malformed            pyRaw           `json:"malformed"`
		NotXML               pyRaw           `json:"not_xml"`
		TooDeep              pyRaw           `json:"too_deep"`
		TooLarge             pyRaw           `json:"too_large"`
		AllTypes             pyCall          `json:"all_types"`
		ListMethodsAfterward []string        `json:"after"`
	}
	pythonClient(t, "checks", env.gatewayURL, &r)

	assert.Contains(t, r.ListProjects, "shop")
	assert.True(t, slices.IsSorted(r.ListProjects))
	ids := map[string]string{}
	for _, l := range r.ListRegistrations {
		ids[l.ID] = l.Role
		assert.Regexp(t, `^\d{8}T`, l.Expires)
		assert.NotEmpty(t, l.Renewed)
		if l.ID == "host-a" {
			assert.Contains(t, l.Targets["test"], "web")
		}
		if l.Role == "builder" {
			assert.Contains(t, l.Projects, "shop")
		}
	}
	assert.Equal(t, "installer", ids["host-a"])
	assert.Equal(t, "installer", ids["host-b"])
	assert.Equal(t, "builder", ids["builder-e2e"])

	wantFault := func(name string, c pyCall, code int, parts ...string) {
		t.Helper()
		require.NotNil(t, c.Fault, "%s: want a fault, got %v", name, c.Result)
		assert.Equal(t, code, c.Fault.Code, "%s: %s", name, c.Fault.String)
		for _, p := range parts {
			assert.Contains(t, c.Fault.String, p, name)
		}
		assert.NotContains(t, c.Fault.String, "hunter2", name)
	}
	wantFault("unknown key", r.UnknownKey, xmlrpc.CodeBadRequest, `"brnch"`,
		"accepted keys: action, batch, branch, env, from, max_failures, pause, project, rebuild, request_id, revision, strategy, tag, trunk, url")
	wantFault("unknown project", r.UnknownProject, xmlrpc.CodeUnknownProject, `"no-such-project"`, "shop")
	wantFault("unknown transaction", r.UnknownTransaction, xmlrpc.CodeUnknownTransaction, "no-such-transaction")
	wantFault("unknown transaction history", r.UnknownTxHistory, xmlrpc.CodeUnknownTransaction)
	wantFault("registry", r.RegistryIsNoTx, xmlrpc.CodeUnknownTransaction)
	wantFault("wrong type", r.WrongType, xmlrpc.CodeInvalidParams, "request_data must be a struct")
	wantFault("unknown method", r.UnknownMethod, xmlrpc.CodeMethodNotFound, "no_such_method")
	wantFault("all types", r.AllTypes, xmlrpc.CodeBadRequest, `"weird"`)

	for _, m := range []string{"request_action", "query_transaction", "query_history", "list_projects", "list_registrations",
		"system.listMethods", "system.methodHelp", "system.methodSignature"} {
		assert.Contains(t, r.ListMethods, m)
	}
	assert.Contains(t, r.MethodHelp, "request_action(credentials, request_data)")
	require.NoError(t, json.Unmarshal(r.MethodSignatureRaw, &r.MethodSignature))
	assert.Equal(t, [][]string{{"string", "string"}, {"string", "struct", "string"}}, r.MethodSignature)

	// The same request_id gives the same transaction, whose id is derived
	// from it, never the request id itself.
	assert.Equal(t, r.RequestIDFirst, r.RequestIDSecond)
	assert.NotEqual(t, r.RequestID, r.RequestIDFirst)
	assert.True(t, strings.HasPrefix(r.RequestIDFirst, workflows.RequestIDPrefix), r.RequestIDFirst)

	// Bad bodies get a fault in an HTTP 200, and the gateway answers after.
	for name, raw := range map[string]pyRaw{"malformed": r.Malformed, "not xml": r.NotXML, "too deep": r.TooDeep, "too large": r.TooLarge} {
		assert.Equal(t, 200, raw.Status, name)
		require.NotNil(t, raw.Fault, name)
	}
	assert.Equal(t, xmlrpc.CodeParseError, r.Malformed.Fault.Code)
	assert.Equal(t, xmlrpc.CodeParseError, r.NotXML.Fault.Code)
	assert.Equal(t, xmlrpc.CodeInvalidRequest, r.TooDeep.Fault.Code)
	assert.Contains(t, r.TooDeep.Fault.String, "64")
	assert.Equal(t, xmlrpc.CodeInvalidRequest, r.TooLarge.Fault.Code)
	assert.Contains(t, r.TooLarge.Fault.String, "larger than")
	assert.Equal(t, r.ListMethods, r.ListMethodsAfterward)

	// Let the build started by request_id finish, so later tests see an
	// idle builder.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := transaction.Wait(ctx, env.Client, r.RequestIDFirst, nil)
	require.NoError(t, err)
	assert.Equal(t, workflows.StatusBuildCompleted, d.Status, d.Reason)
	assert.Equal(t, "py-tester", d.Request.Requester)
}

// TestXMLRPCInstallFrom: request_data `from` installs an earlier build.
func TestXMLRPCInstallFrom(t *testing.T) {
	var r struct {
		Build, Built, Install, Installed string
		Bad                              struct {
			Fault struct {
				FaultCode   int    `json:"faultCode"`
				FaultString string `json:"faultString"`
			} `json:"fault"`
		}
	}
	pythonClient(t, "from", env.gatewayURL, &r)
	assert.Equal(t, "BUILD_COMPLETED", r.Built)
	assert.Equal(t, "INSTALL_COMPLETED", r.Installed)
	d, err := transaction.Get(context.Background(), env.Client, r.Install)
	require.NoError(t, err)
	assert.Equal(t, r.Build, d.Request.From)
	b, err := transaction.Get(context.Background(), env.Client, r.Build)
	require.NoError(t, err)
	assert.Equal(t, b.Artifacts, d.Artifacts)
	assert.Equal(t, 4, r.Bad.Fault.FaultCode)
	assert.Contains(t, r.Bad.Fault.FaultString, "needs action install")
}

// TestXMLRPCWhereRollbackMulticall: from Python, where says what is live,
// rollback switches it back as a transaction query_transaction and
// query_history follow, and system.multicall (Python's MultiCall) answers
// several calls at once, faults among them.
func TestXMLRPCWhereRollbackMulticall(t *testing.T) {
	first := releaseSite(t, "site xmlrpc 1\n")
	second := releaseSite(t, "site xmlrpc 2\n")
	type row struct {
		Host        string   `json:"host"`
		Target      string   `json:"target"`
		Transaction string   `json:"transaction"`
		InstalledAt string   `json:"installed_at"`
		SHA256      string   `json:"sha256"`
		Releases    []string `json:"releases"`
		Error       string   `json:"error"`
	}
	var r struct {
		Before           []row    `json:"before"`
		Rollback         string   `json:"rollback"`
		Status           string   `json:"status"`
		After            []row    `json:"after"`
		HistoryEvents    []string `json:"history_events"`
		InstalledAtTypes []string `json:"installed_at_types"`
		Multicall        []pyCall `json:"multicall"`
		UnknownProject   pyCall   `json:"unknown_project"`
		RollbackBadKey   pyCall   `json:"rollback_unknown_key"`
	}
	pythonClient(t, "rollout", env.gatewayURL, &r, "site", "test")

	live := func(rows []row) map[string]string {
		out := map[string]string{}
		for _, x := range rows {
			assert.Empty(t, x.Error, "%s", x.Host)
			if x.Target == "app" {
				out[x.Host] = x.Transaction
			}
		}
		return out
	}
	assert.Equal(t, map[string]string{"host-a": second, "host-b": second}, live(r.Before))
	for _, x := range r.Before {
		if x.Target == "app" {
			assert.Len(t, x.SHA256, 64)
			assert.Contains(t, x.Releases, first)
			assert.Regexp(t, `^\d{8}T\d{2}:\d{2}:\d{2}$`, x.InstalledAt)
		}
	}
	assert.Equal(t, []string{"DateTime"}, r.InstalledAtTypes, "installed_at is a dateTime.iso8601")

	assert.Equal(t, "ROLLBACK_COMPLETED", r.Status)
	assert.Equal(t, map[string]string{"host-a": first, "host-b": first}, live(r.After))
	for _, h := range []string{"host-a", "host-b"} {
		rel, index := siteCurrent(t, h)
		assert.Equal(t, first, rel)
		assert.Equal(t, "site xmlrpc 1\n", index)
	}
	assert.Contains(t, r.HistoryEvents, "status ROLLBACK_COMPLETED")
	d, err := transaction.Get(context.Background(), env.Client, r.Rollback)
	require.NoError(t, err)
	assert.Equal(t, workflows.ActionRollback, d.Request.Action)
	assert.Equal(t, "py-tester", d.Request.Requester)
	assertNoPassword(t, r.Rollback, "rollback")

	require.Len(t, r.Multicall, 5)
	assert.Equal(t, "ROLLBACK_COMPLETED", r.Multicall[0].Result)
	assert.Contains(t, r.Multicall[1].Result, "site")
	assert.NotEmpty(t, r.Multicall[2].Result)
	require.NotNil(t, r.Multicall[3].Fault)
	assert.Equal(t, xmlrpc.CodeMethodNotFound, r.Multicall[3].Fault.Code)
	require.NotNil(t, r.Multicall[4].Fault)
	assert.Equal(t, xmlrpc.CodeBadRequest, r.Multicall[4].Fault.Code)
	assert.Contains(t, r.Multicall[4].Fault.String, `unknown env "no-such-env"`)

	require.NotNil(t, r.UnknownProject.Fault)
	assert.Equal(t, xmlrpc.CodeUnknownProject, r.UnknownProject.Fault.Code)
	require.NotNil(t, r.RollbackBadKey.Fault)
	assert.Equal(t, xmlrpc.CodeBadRequest, r.RollbackBadKey.Fault.Code)
	assert.Contains(t, r.RollbackBadKey.Fault.String, "rollback accepts: env, project, to")
}
