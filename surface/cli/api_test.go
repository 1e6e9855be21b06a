package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testcert"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workflows"
)

// runEnv runs the CLI with env as its whole environment.
func runEnv(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, Options{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	return out.String(), errb.String(), code
}

// apiGateway serves a real gateway with authentication on (bob holds a
// deployer token) and no Temporal behind it: what these tests ask is
// answered before Temporal would be asked.
func apiGateway(t *testing.T) (url, token string) {
	t.Helper()
	url, token, _ = apiGatewayTLS(t, false)
	return url, token
}

// apiGatewayTLS is apiGateway, over TLS when tls is set, with the CA file
// that verifies its certificate.
func apiGatewayTLS(t *testing.T, tls bool) (url, token, ca string) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	f, err := auth.Load(users)
	require.NoError(t, err)
	token, _, err = f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	require.NoError(t, f.Save())
	cfg := &config.Manager{
		Service:      config.Service{Version: config.Version},
		Environments: map[string]config.Environment{"test": {}},
		Projects:     map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
		Auth:         config.Auth{UsersFile: users},
		Policy:       auth.Policy{{Roles: []string{"deployer"}, Actions: []string{"build", "install", "read"}, Projects: []string{"*"}, Environments: []string{"*"}}},
	}
	if tls {
		cert := testcert.Make(t, dir)
		cfg.Gateway = config.Gateway{TLSCertPath: cert.Cert, TLSKeyPath: cert.Key}
		ca = cert.CA
	}
	cfg.Default()
	require.NoError(t, cfg.Validate())
	l, err := xmlrpc.ListenGateway(&xmlrpc.Gateway{Config: cfg, Secret: []byte("0123456789abcdef0123456789abcdef")}, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.URL(), token, ca
}

func TestCLIOverTheManagersAPIWithTLS(t *testing.T) {
	url, token, ca := apiGatewayTLS(t, true)
	require.True(t, strings.HasPrefix(url, "https://"), url)
	env := map[string]string{"RELMAN_TOKEN": token, "RELMAN_MANAGER_URL": url}
	_, stderr, code := runEnv(t, env, "release", "nope", "--env", "test", "--manager-ca-path", ca, "--address", "127.0.0.1:1")
	assert.Equal(t, ExitError, code, stderr)
	assert.Contains(t, stderr, `unknown project "nope"`, "through TLS, verified with the CA")
	env["RELMAN_MANAGER_CA"] = ca
	_, stderr, _ = runEnv(t, env, "release", "nope", "--env", "test", "--address", "127.0.0.1:1")
	assert.Contains(t, stderr, `unknown project "nope"`, "the CA from the environment")
	delete(env, "RELMAN_MANAGER_CA")
	_, stderr, code = runEnv(t, env, "release", "nope", "--env", "test", "--address", "127.0.0.1:1")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr, "could not reach the manager's API at "+strings.TrimSuffix(url, "/"))
	assert.Contains(t, stderr, "certificate", "a certificate the system does not trust is refused")
}

func TestCLIOverTheManagersAPI(t *testing.T) {
	url, token := apiGateway(t)
	// A closed port: any Temporal access would fail with another error.
	closed := []string{"--address", "127.0.0.1:1"}
	withToken := map[string]string{"RELMAN_TOKEN": token, "RELMAN_MANAGER_URL": url}

	t.Run("the manager answers with its fault", func(t *testing.T) {
		_, stderr, code := runEnv(t, withToken, append([]string{"release", "nope", "--env", "test"}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, `the manager refused: unknown project "nope"; this manager releases: shop (fault 1)`)
	})
	t.Run("the flag as well as the environment", func(t *testing.T) {
		_, stderr, code := runEnv(t, map[string]string{"RELMAN_TOKEN": token}, append([]string{"release", "nope", "--env", "test", "--manager-url", url}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, `unknown project "nope"`)
	})
	t.Run("the URL and token file from client.yaml", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "bob.token"), []byte(token+"\n"), 0o600))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "relman"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "relman", "client.yaml"), []byte("version: 1\nmanager_url: "+url+"\ntoken_file: ../bob.token\n"), 0o600))
		_, stderr, code := runEnv(t, map[string]string{"XDG_CONFIG_HOME": dir}, append([]string{"release", "nope", "--env", "test"}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, `unknown project "nope"`)

		bad := filepath.Join(dir, "bad.yaml")
		require.NoError(t, os.WriteFile(bad, []byte("version: 1\nmanager_url: relman:10000\n"), 0o600))
		_, stderr, code = runEnv(t, map[string]string{"RELMAN_CLIENT_CONFIG": bad}, append([]string{"status", "tx"}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, "RELMAN_CLIENT_CONFIG: ")
		assert.Contains(t, stderr, "manager_url")
	})
	t.Run("a token the manager does not know", func(t *testing.T) {
		other, err := auth.Load(filepath.Join(t.TempDir(), "users.yaml"))
		require.NoError(t, err)
		stranger, _, err := other.NewToken("bob", []string{"deployer"})
		require.NoError(t, err)
		_, stderr, code := runEnv(t, map[string]string{"RELMAN_TOKEN": stranger, "RELMAN_MANAGER_URL": url}, append([]string{"release", "shop", "--env", "test"}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, "credentials rejected; send {username, password} or {token} (fault 3)")
	})
	t.Run("no token, authentication on", func(t *testing.T) {
		_, stderr, code := runEnv(t, map[string]string{"RELMAN_MANAGER_URL": url, "RELMAN_REQUESTER": "eve"}, append([]string{"registrations"}, closed...)...)
		assert.Equal(t, ExitError, code, stderr)
		assert.Contains(t, stderr, "credentials rejected")
	})
	t.Run("a bad request is a usage error", func(t *testing.T) {
		_, stderr, code := runEnv(t, withToken, append([]string{"list", "--limit", "5000"}, closed...)...)
		assert.Equal(t, ExitUsage, code, stderr)
		assert.Contains(t, stderr, "limit must be a whole number from 1 to 1000 (fault 4)")
	})

	refused := map[string]struct {
		env  map[string]string
		args []string
		msg  string
	}{
		"namespace needs Temporal":  {withToken, []string{"namespace", "prepare"}, "relman namespace prepare is not available over the manager's API (--manager-url / RELMAN_MANAGER_URL is set)"},
		"every manager's list":      {withToken, []string{"list", "--all-managers"}, "--all-managers is not available over the manager's API"},
		"a token over plain http":   {map[string]string{"RELMAN_TOKEN": token, "RELMAN_MANAGER_URL": "http://relman.example.com:10000/"}, []string{"status", "tx"}, "plain http to another machine: your token would cross the network in clear; use https://"},
		"not a URL":                 {withToken, []string{"status", "tx", "--manager-url", "relman.example.com"}, "--manager-url must be the manager's gateway URL"},
		"a CA file that is missing": {withToken, []string{"status", "tx", "--manager-ca-path", "/nonexistent/ca.pem"}, "check --manager-ca-path"},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			_, stderr, code := runEnv(t, tc.env, append(tc.args, closed...)...)
			assert.NotEqual(t, ExitOK, code)
			assert.Contains(t, stderr, tc.msg)
			assert.NotContains(t, stderr, "127.0.0.1:1", "Temporal was not dialled")
		})
	}

	t.Run("a URL that is no relman API", func(t *testing.T) {
		hs := httptest.NewServer(http.NotFoundHandler())
		defer hs.Close()
		_, stderr, code := runEnv(t, map[string]string{"RELMAN_TOKEN": token, "RELMAN_MANAGER_URL": hs.URL}, append([]string{"status", "tx"}, closed...)...)
		assert.Equal(t, ExitError, code)
		assert.Contains(t, stderr, "does not answer as relman's JSON API (HTTP 404 to get_transaction)")
	})
}

// A wait through the API polls on while the gateway answers fault 5 (the
// manager restarting), and stops at once on a fault that will not change.
func TestAPIWaitRidesOutAnOutage(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/api/v1/")
		var body struct {
			Params []any `json:"params"`
		}
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		mu.Lock()
		calls[method]++
		n := calls[method]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case method == "cancel_transaction":
			assert.Equal(t, []any{map[string]any{"token": body.Params[0].(map[string]any)["token"]}, "tx-1", "enough"}, body.Params)
			_, _ = w.Write([]byte(`{"result": "cancel of tx-1 requested"}`))
		case method == "get_transaction" && body.Params[1] == "tx-gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"fault": {"code": 2, "message": "no transaction \"tx-gone\""}}`))
		case method == "get_transaction" && n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"fault": {"code": 5, "message": "could not read transaction tx-1: the manager is stopping"}}`))
		case method == "get_transaction":
			d, _ := json.Marshal(workflows.Detail{Transaction: "tx-1", Status: workflows.StatusCancelled, Request: workflows.Request{Action: workflows.ActionInstall}})
			_, _ = w.Write([]byte(`{"result": ` + string(d) + `}`))
		default:
			t.Errorf("unexpected call %s", method)
		}
	}))
	defer hs.Close()
	_, token := apiGateway(t)
	env := map[string]string{"RELMAN_TOKEN": token, "RELMAN_MANAGER_URL": hs.URL}
	out, stderr, code := runEnv(t, env, "cancel", "tx-1", "--reason", "enough", "--address", "127.0.0.1:1")
	require.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "CANCELLED\n", out)
	assert.Equal(t, 3, calls["get_transaction"], "two faults 5 ridden out")

	_, stderr, code = runEnv(t, env, "status", "tx-gone", "--address", "127.0.0.1:1")
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr, `the manager refused: no transaction "tx-gone" (fault 2)`)
}
