package xmlrpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
)

// postJSON posts body to the JSON API's method and returns the HTTP status
// and the decoded answer.
func postJSON(t *testing.T, c *http.Client, base, method, body string) (int, JSONResponse) {
	t.Helper()
	resp, err := c.Post(strings.TrimSuffix(base, "/")+APIPrefix+method, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out JSONResponse
	require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	require.True(t, (out.Fault == nil) != (out.Result == nil), "an answer holds a result or a fault: %s", raw)
	return resp.StatusCode, out
}

func TestJSONAPICalls(t *testing.T) {
	_, hs := testServer(t, nil)
	c := hs.Client()
	// JSON values reach the method as XML-RPC's would: whole numbers int.
	status, out := postJSON(t, c, hs.URL, "echo", `{"params": [1, 2.0, 2.5, "s", true, null, {"n": 7, "a": [1e3]}, -9007199254740993]}`)
	require.Equal(t, http.StatusOK, status)
	var got []any
	require.NoError(t, json.Unmarshal(out.Result, &got))
	assert.Equal(t, []any{1.0, 2.0, 2.5, "s", true, nil, map[string]any{"n": 7.0, "a": []any{1000.0}}, -9007199254740992.0}, got)

	s := NewServer(nil)
	var types []string
	s.Register("types", Method{Func: func(_ context.Context, ps []any) (any, error) {
		for _, p := range ps {
			types = append(types, TypeName(p))
		}
		return len(ps), nil
	}})
	ts := httptest.NewServer(s)
	defer ts.Close()
	status, out = postJSON(t, ts.Client(), ts.URL, "types", `{"params": [1, 2.0, 2.5, "s", true, null, {"n": 7}, [1e3]]}`)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "8", string(out.Result))
	assert.Equal(t, []string{"int", "int", "double", "string", "boolean", "nil", "struct", "array"}, types)

	// No body, or no params: a call without params.
	status, out = postJSON(t, c, hs.URL, "echo", ``)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "[]", string(out.Result))
	status, out = postJSON(t, c, hs.URL, "system.listMethods", `{}`)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, string(out.Result), `"echo"`)

	faults := map[string]struct {
		method, body string
		status, code int
		msg          string
	}{
		"unknown method":   {"nope", `{"params": []}`, http.StatusNotFound, CodeMethodNotFound, `method "nope" is not supported`},
		"no method":        {"", `{"params": []}`, http.StatusNotFound, CodeMethodNotFound, "name the method in the path"},
		"not JSON":         {"echo", `<methodCall/>`, http.StatusBadRequest, CodeParseError, "not a JSON object"},
		"params not array": {"echo", `{"params": {"a": 1}}`, http.StatusBadRequest, CodeParseError, "not a JSON object"},
		"unknown key":      {"echo", `{"params": [], "id": 1}`, http.StatusBadRequest, CodeParseError, `unknown field "id"`},
		"two objects":      {"echo", `{"params": []} {"params": []}`, http.StatusBadRequest, CodeParseError, "more after its JSON object"},
		"too deep":         {"echo", `{"params": [` + strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2) + `]}`, http.StatusBadRequest, CodeInvalidRequest, "nest deeper"},
		"too deep objects": {"echo", `{"params": [` + strings.Repeat(`{"a": `, MaxDepth+2) + `1` + strings.Repeat("}", MaxDepth+2) + `]}`, http.StatusBadRequest, CodeInvalidRequest, "nest deeper"},
		"method fault":     {"fault", `{"params": []}`, http.StatusNotFound, CodeUnknownProject, "no"},
		"method error":     {"fail", `{"params": []}`, http.StatusServiceUnavailable, CodeInternal, "disk full"},
		"panic":            {"panic", `{"params": []}`, http.StatusInternalServerError, CodeInternalError, "failed inside the server"},
		"unencodable":      {"unencodable", `{"params": []}`, http.StatusInternalServerError, CodeInternalError, "could not be encoded"},
	}
	for name, tc := range faults {
		t.Run(name, func(t *testing.T) {
			status, out := postJSON(t, c, hs.URL, tc.method, tc.body)
			assert.Equal(t, tc.status, status)
			require.NotNil(t, out.Fault)
			assert.Equal(t, tc.code, out.Fault.Code, out.Fault.Message)
			assert.Contains(t, out.Fault.Message, tc.msg)
		})
	}

	t.Run("GET is refused", func(t *testing.T) {
		resp, err := c.Get(hs.URL + APIPrefix + "echo")
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
		assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
	})
	t.Run("a body over the cap", func(t *testing.T) {
		s.MaxBody = 64
		status, out := postJSON(t, ts.Client(), ts.URL, "types", `{"params": ["`+strings.Repeat("x", 200)+`"]}`)
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Equal(t, CodeInvalidRequest, out.Fault.Code)
		assert.Contains(t, out.Fault.Message, "larger than 64 bytes")
	})
}

// The gateway's methods over JSON, on its TLS listener, with its
// authentication and login throttle; and the checks of the new methods
// that run before Temporal is touched.
func TestJSONAPIGateway(t *testing.T) {
	url, ca, logs := tlsGateway(t)
	pem, err := os.ReadFile(ca)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	status, out := postJSON(t, c, url, "list_projects", `{"params": [{"username": "dave", "password": "dave-Right-pw-2"}]}`)
	require.Equal(t, http.StatusOK, status, "%+v", out.Fault)
	assert.JSONEq(t, `["shop"]`, string(out.Result))

	status, out = postJSON(t, c, url, "list_projects", `{"params": [{}]}`)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, CodeCredentialsRejected, out.Fault.Code)

	status, out = postJSON(t, c, url, "request_action", `{"params": [{"username": "dave", "password": "dave-Right-pw-2"}, {"project": "shop", "env": "prod"}]}`)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, CodeForbidden, out.Fault.Code)
	assert.Contains(t, out.Fault.Message, `user dave may not install project "shop" in environment "prod"`)

	// The throttle XML-RPC logins share: wrong passwords lock alice out.
	last := 0
	for i := range loginFreeUser + 2 {
		status, out = postJSON(t, c, url, "list_projects", `{"params": [{"username": "alice", "password": "wrong-`+string(rune('a'+i))+`"}]}`)
		last = status
	}
	assert.Equal(t, http.StatusTooManyRequests, last)
	assert.Equal(t, CodeThrottled, out.Fault.Code)
	assert.Contains(t, out.Fault.Message, "too many failed logins")
	assert.NotContains(t, logs.String(), "wrong-", "no password in the log")
	assert.NotContains(t, logs.String(), "dave-Right", "no password in the log")
	assert.Contains(t, logs.String(), "json api call")

	t.Run("plain HTTP to the TLS listener fails", func(t *testing.T) {
		_, err := http.Post(strings.Replace(url, "https://", "http://", 1)+"api/v1/list_projects", "application/json", strings.NewReader(`{}`))
		if err == nil {
			// Go's TLS server answers plain HTTP with a 400 and closes.
			return
		}
		assert.Error(t, err)
	})
}

func TestJSONAPITransactionFaults(t *testing.T) {
	cfg := &config.Manager{
		Environments: map[string]config.Environment{"test": {}},
		Projects:     map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
	}
	cfg.Default()
	hs := httptest.NewServer(NewHandler(nil, cfg, nil))
	defer hs.Close()
	c := hs.Client()
	cred := `{"username": "alice"}`
	tests := map[string]struct {
		method, params string
		status, code   int
		msg            string
	}{
		"get: no id":            {"get_transaction", `[]`, http.StatusBadRequest, CodeInvalidParams, "get_transaction takes ([credentials,] trans_id)"},
		"get: id not a string":  {"get_transaction", `[` + cred + `, 5]`, http.StatusBadRequest, CodeInvalidParams, "trans_id must be a string, not int"},
		"get: empty id":         {"get_transaction", `[""]`, http.StatusNotFound, CodeUnknownTransaction, "trans_id is empty"},
		"get: options array":    {"get_transaction", `[` + cred + `, "tx", []]`, http.StatusBadRequest, CodeInvalidParams, "get_transaction options must be a struct, not array"},
		"get: unknown option":   {"get_transaction", `[` + cred + `, "tx", {"steps": false}]`, http.StatusBadRequest, CodeBadRequest, `unknown key "steps"; it accepts: installs`},
		"get: installs as int":  {"get_transaction", `[` + cred + `, "tx", {"installs": 0}]`, http.StatusBadRequest, CodeBadRequest, "installs must be a boolean, not int"},
		"get: four params":      {"get_transaction", `[` + cred + `, "tx", {}, {}]`, http.StatusBadRequest, CodeInvalidParams, "get_transaction takes ([credentials,] trans_id)"},
		"list: unknown key":     {"list_transactions", `[` + cred + `, {"projekt": "shop"}]`, http.StatusBadRequest, CodeBadRequest, `unknown key(s) "projekt"; list_transactions accepts: env, limit, project, requester, status`},
		"list: limit 0":         {"list_transactions", `[` + cred + `, {"limit": 0}]`, http.StatusBadRequest, CodeBadRequest, "limit must be a whole number from 1 to 1000"},
		"list: limit 2.5":       {"list_transactions", `[` + cred + `, {"limit": 2.5}]`, http.StatusBadRequest, CodeBadRequest, "limit must be a whole number"},
		"list: limit too big":   {"list_transactions", `[` + cred + `, {"limit": 5000}]`, http.StatusBadRequest, CodeBadRequest, "from 1 to 1000"},
		"list: status as int":   {"list_transactions", `[` + cred + `, {"status": 3}]`, http.StatusBadRequest, CodeBadRequest, "filter status must be a string"},
		"list: status too long": {"list_transactions", `[` + cred + `, {"status": "` + strings.Repeat("x", 1025) + `"}]`, http.StatusBadRequest, CodeBadRequest, "filter status is longer than 1024 characters"},
		"list: filter array":    {"list_transactions", `[` + cred + `, []]`, http.StatusBadRequest, CodeInvalidParams, "filter must be a struct, not array"},
		"list: three params":    {"list_transactions", `[` + cred + `, {}, {}]`, http.StatusBadRequest, CodeInvalidParams, "(credentials[, filter])"},
		"plan: request_id":      {"plan", `[` + cred + `, {"project": "shop", "env": "test", "request_id": "a"}]`, http.StatusBadRequest, CodeBadRequest, "plan takes no request_id"},
		"plan: unknown key":     {"plan", `[` + cred + `, {"project": "shop", "env": "test", "envv": "a"}]`, http.StatusBadRequest, CodeBadRequest, `unknown key(s) "envv"`},
		"plan: no env":          {"plan", `[` + cred + `, {"project": "shop"}]`, http.StatusBadRequest, CodeBadRequest, "an install needs env"},
		"plan: unknown project": {"plan", `[` + cred + `, {"project": "blog", "env": "test"}]`, http.StatusNotFound, CodeUnknownProject, `unknown project "blog"`},
		"plan: one param":       {"plan", `[` + cred + `]`, http.StatusBadRequest, CodeInvalidParams, "plan takes (credentials, request_data)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, out := postJSON(t, c, hs.URL, tc.method, `{"params": `+tc.params+`}`)
			assert.Equal(t, tc.status, status)
			require.NotNil(t, out.Fault)
			assert.Equal(t, tc.code, out.Fault.Code, out.Fault.Message)
			assert.Contains(t, out.Fault.Message, tc.msg)
		})
	}
	// The new methods are XML-RPC methods too, with help.
	v, err := rpc(t, hs.URL, "system.methodHelp", "list_transactions")
	require.NoError(t, err)
	assert.Contains(t, v, "list_transactions(credentials[, filter])")
	_, err = rpc(t, hs.URL, "list_transactions", map[string]any{}, map[string]any{"limit": 0})
	assert.Equal(t, CodeBadRequest, faultCode(t, err))
}

func TestPlainData(t *testing.T) {
	type row struct {
		Name  string         `json:"name"`
		N     int64          `json:"n"`
		F     float64        `json:"f"`
		Skip  string         `json:"skip,omitempty"`
		Inner map[string]any `json:"inner"`
	}
	v, err := plainData([]row{{Name: "a", N: 3, F: 1.5, Inner: map[string]any{"x": []int{1}}}})
	require.NoError(t, err)
	assert.Equal(t, []any{map[string]any{"name": "a", "n": 3, "f": 1.5, "inner": map[string]any{"x": []any{1}}}}, v)
	var b strings.Builder
	require.NoError(t, EncodeResponse(&b, v), "plain data encodes as XML-RPC")
}
