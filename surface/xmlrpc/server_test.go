package xmlrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
)

func testServer(t *testing.T, log *slog.Logger) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(log)
	s.Register("echo", Method{
		Func:       func(_ context.Context, ps []any) (any, error) { return ps, nil },
		Help:       "echo(...) => [params]",
		Signatures: [][]string{{"array"}},
	})
	s.Register("fail", Method{Func: func(context.Context, []any) (any, error) { return nil, errors.New("disk full") }})
	s.Register("fault", Method{Func: func(context.Context, []any) (any, error) { return nil, Faultf(CodeUnknownProject, "no") }})
	s.Register("panic", Method{Func: func(context.Context, []any) (any, error) { panic("boom") }})
	s.Register("slow", Method{Func: func(ctx context.Context, _ []any) (any, error) {
		<-ctx.Done()
		return nil, Faultf(CodeInternal, "gave up: %v", ctx.Err())
	}})
	s.Register("unencodable", Method{Func: func(context.Context, []any) (any, error) { return make(chan int), nil }})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs
}

// rpc posts a call and decodes the answer; the HTTP status must be 200.
func rpc(t *testing.T, url, method string, params ...any) (any, error) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, EncodeCall(&b, method, params...))
	return post(t, url, b.String())
}

func post(t *testing.T, url, body string) (any, error) {
	t.Helper()
	resp, err := http.Post(url, "text/xml", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/xml; charset=utf-8", resp.Header.Get("Content-Type"))
	return DecodeResponse(resp.Body)
}

func faultCode(t *testing.T, err error) int {
	t.Helper()
	var f *Fault
	require.ErrorAs(t, err, &f)
	return f.Code
}

func TestServerCalls(t *testing.T) {
	_, hs := testServer(t, nil)
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	v, err := rpc(t, hs.URL+"/RPC2", "echo", 1, "two", true, 1.5, when, []byte("b"), map[string]any{"k": []any{nil}})
	require.NoError(t, err)
	assert.Equal(t, []any{1, "two", true, 1.5, when, []byte("b"), map[string]any{"k": []any{nil}}}, v)

	v, err = rpc(t, hs.URL+"/", "system.listMethods")
	require.NoError(t, err)
	assert.Equal(t, []any{"echo", "fail", "fault", "panic", "slow", "system.listMethods", "system.methodHelp", "system.methodSignature", "system.multicall", "unencodable"}, v)

	v, err = rpc(t, hs.URL, "system.methodHelp", "echo")
	require.NoError(t, err)
	assert.Equal(t, "echo(...) => [params]", v)
	v, err = rpc(t, hs.URL, "system.methodSignature", "echo")
	require.NoError(t, err)
	assert.Equal(t, []any{[]any{"array"}}, v)
	v, err = rpc(t, hs.URL, "system.methodSignature", "fail")
	require.NoError(t, err)
	assert.Equal(t, "signatures not supported", v)

	tests := map[string]struct {
		method string
		params []any
		code   int
	}{
		"unknown method":   {"nope", nil, CodeMethodNotFound},
		"help of unknown":  {"system.methodHelp", []any{"nope"}, CodeMethodNotFound},
		"help wrong type":  {"system.methodHelp", []any{1}, CodeInvalidParams},
		"help no param":    {"system.methodHelp", nil, CodeInvalidParams},
		"plain error":      {"fail", nil, CodeInternal},
		"method fault":     {"fault", nil, CodeUnknownProject},
		"panic":            {"panic", nil, CodeInternalError},
		"unencodable":      {"unencodable", nil, CodeInternalError},
		"signature of nil": {"system.methodSignature", []any{nil}, CodeInvalidParams},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := rpc(t, hs.URL, tt.method, tt.params...)
			assert.Equal(t, tt.code, faultCode(t, err))
		})
	}
}

// system.multicall answers each call in order, a result in a one-element
// array or a fault struct, and one call's fault does not stop the others.
func TestServerMulticall(t *testing.T) {
	_, hs := testServer(t, nil)
	v, err := rpc(t, hs.URL, "system.multicall", []any{
		map[string]any{"methodName": "echo", "params": []any{1, "a"}},
		map[string]any{"methodName": "fault", "params": []any{}},
		map[string]any{"methodName": "panic"},
		map[string]any{"methodName": "nope", "params": []any{}},
		map[string]any{"methodName": "system.multicall", "params": []any{[]any{}}},
		map[string]any{"methodName": "echo", "params": "not an array"},
		map[string]any{"params": []any{}},
		"not a struct",
		map[string]any{"methodName": "system.methodHelp", "params": []any{"echo"}},
	})
	require.NoError(t, err)
	got, ok := v.([]any)
	require.True(t, ok, "%#v", v)
	require.Len(t, got, 9)
	assert.Equal(t, []any{[]any{1, "a"}}, got[0])
	assert.Equal(t, []any{"echo(...) => [params]"}, got[8])
	wantFault := func(i, code int, part string) {
		t.Helper()
		f, ok := got[i].(map[string]any)
		require.True(t, ok, "answer %d: %#v", i, got[i])
		assert.Equal(t, code, f["faultCode"], "answer %d: %v", i, f["faultString"])
		assert.Contains(t, f["faultString"], part, "answer %d", i)
	}
	wantFault(1, CodeUnknownProject, "no")
	wantFault(2, CodeInternalError, "panic failed inside the server")
	wantFault(3, CodeMethodNotFound, `"nope"`)
	wantFault(4, CodeInvalidParams, "call 4: system.multicall cannot call itself")
	wantFault(5, CodeInvalidParams, "params of call 5 (echo) of system.multicall must be an array, not string")
	wantFault(6, CodeInvalidParams, "call 6 of system.multicall needs methodName")
	wantFault(7, CodeInvalidParams, "call 7 of system.multicall must be a {methodName, params} struct, not string")

	tests := map[string]struct {
		params []any
		want   string
	}{
		"no param":       {nil, "takes one param"},
		"two params":     {[]any{[]any{}, []any{}}, "got 2 params"},
		"not an array":   {[]any{"echo"}, "not string"},
		"too many calls": {[]any{make([]any, MaxMulticall+1)}, "got 101 calls; send at most 100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := rpc(t, hs.URL, "system.multicall", tc.params...)
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, CodeInvalidParams, f.Code)
			assert.Contains(t, f.Message, tc.want)
		})
	}
}

func TestServerBadBodies(t *testing.T) {
	s, hs := testServer(t, nil)
	s.MaxBody = 4096
	tests := map[string]struct {
		body string
		code int
	}{
		"not xml":     {"{\"json\": true}", CodeParseError},
		"truncated":   {"<methodCall><methodName>echo</methodName><params><param>", CodeParseError},
		"not rpc":     {"<html><body/></html>", CodeInvalidRequest},
		"too deep":    {call("<param>" + strings.Repeat("<value><array><data>", 100) + strings.Repeat("</data></array></value>", 100) + "</param>"), CodeInvalidRequest},
		"too large":   {call(param("<string>" + strings.Repeat("x", 5000) + "</string>")), CodeInvalidRequest},
		"large name":  {"<methodCall><methodName>" + strings.Repeat("x", 10000), CodeInvalidRequest},
		"billion lol": {`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><methodCall><methodName>&lol2;</methodName></methodCall>`, CodeInvalidRequest},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := post(t, hs.URL, tt.body)
			assert.Equal(t, tt.code, faultCode(t, err))
		})
	}
	// Still answering.
	v, err := rpc(t, hs.URL, "echo", "alive")
	require.NoError(t, err)
	assert.Equal(t, []any{"alive"}, v)
}

func TestServerHTTPErrors(t *testing.T) {
	_, hs := testServer(t, nil)
	resp, err := http.Get(hs.URL + "/RPC2")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "POST", resp.Header.Get("Allow"))
	resp, err = http.Post(hs.URL+"/other", "text/xml", strings.NewReader(call("")))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestServerCallTimeout(t *testing.T) {
	s, hs := testServer(t, nil)
	s.CallTimeout = 50 * time.Millisecond
	start := time.Now()
	_, err := rpc(t, hs.URL, "slow")
	assert.Equal(t, CodeInternal, faultCode(t, err))
	assert.Less(t, time.Since(start), 5*time.Second)
}

// The log names the method and fault code and never the params: they hold
// credentials.
func TestServerLogsNoParams(t *testing.T) {
	var logs bytes.Buffer
	_, hs := testServer(t, slog.New(slog.NewTextHandler(&logs, nil)))
	_, err := rpc(t, hs.URL, "echo", map[string]any{"username": "u", "password": "hunter2"})
	require.NoError(t, err)
	_, err = rpc(t, hs.URL, "fault", map[string]any{"password": "hunter2"})
	require.Error(t, err)
	assert.Contains(t, logs.String(), "method=echo")
	assert.Contains(t, logs.String(), "fault=1")
	assert.NotContains(t, logs.String(), "hunter2")
}

func TestListenFreePortAndClose(t *testing.T) {
	_, hs := testServer(t, nil)
	l, err := Listen("127.0.0.1:0", hs.Config.Handler, nil, nil)
	require.NoError(t, err)
	v, err := rpc(t, l.URL(), "echo", 1)
	require.NoError(t, err)
	assert.Equal(t, []any{1}, v)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close twice is fine")
	require.NoError(t, <-l.Done())
	_, err = http.Post(l.URL(), "text/xml", strings.NewReader(call("")))
	assert.Error(t, err)
	// A port in use is a clear error.
	l2, err := Listen("127.0.0.1:0", hs.Config.Handler, nil, nil)
	require.NoError(t, err)
	defer l2.Close()
	_, err = Listen(l2.Addr().String(), hs.Config.Handler, nil, nil)
	assert.ErrorContains(t, err, "xml-rpc gateway on "+l2.Addr().String())
}

// A call still running when its listener closes (say, waiting on a
// Temporal server that went away) gets a fault that says the server is
// stopping, and Close does not wait out the call.
func TestListenCloseEndsCallsInFlight(t *testing.T) {
	s, _ := testServer(t, nil)
	s.CallTimeout = time.Hour
	entered := make(chan struct{})
	s.Register("stuck", Method{Func: func(ctx context.Context, _ []any) (any, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	l, err := Listen("127.0.0.1:0", s, nil, nil)
	require.NoError(t, err)
	answered := make(chan error, 1)
	go func() {
		var b bytes.Buffer
		if err := EncodeCall(&b, "stuck"); err != nil {
			answered <- err
			return
		}
		resp, err := http.Post(l.URL(), "text/xml", &b)
		if err != nil {
			answered <- err
			return
		}
		defer resp.Body.Close()
		_, err = DecodeResponse(resp.Body)
		answered <- err
	}()
	<-entered
	require.NoError(t, l.Close())
	err = <-answered
	var f *Fault
	require.ErrorAs(t, err, &f, "the client gets an answer, not a broken connection")
	assert.Equal(t, CodeInternal, f.Code)
	assert.Contains(t, f.Message, "stuck was cut short: the server is stopping; try again in a moment")
}

// The gateway's request checks run before Temporal is touched, so they are
// tested here without a client; the e2e tests cover the rest.
func TestGatewayRequestFaults(t *testing.T) {
	cfg := &config.Manager{
		Environments: map[string]config.Environment{"test": {}, "prod": {}},
		Projects:     map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}, "blog": {Targets: []string{"web"}}},
	}
	cfg.Default()
	hs := httptest.NewServer(NewHandler(nil, cfg, nil))
	defer hs.Close()
	cred := map[string]any{"username": "alice", "password": "hunter2"}
	tests := map[string]struct {
		params []any
		code   int
		msg    []string
	}{
		"unknown key": {[]any{cred, map[string]any{"project": "shop", "action": "install", "env": "test", "branche": "x"}}, CodeBadRequest,
			[]string{`"branche"`, "accepted keys: action, batch, branch, env, from, max_failures, pause, project, rebuild, request_id, revision, strategy, tag, trunk, url"}},
		"bad pause":         {[]any{cred, map[string]any{"project": "shop", "env": "test", "pause": "soon"}}, CodeBadRequest, []string{`pause must be a duration such as 30s or 2m, not "soon"`}},
		"bad strategy":      {[]any{cred, map[string]any{"project": "shop", "env": "test", "strategy": "yolo"}}, CodeBadRequest, []string{"request_data rollout:", "yolo"}},
		"rollout, build":    {[]any{cred, map[string]any{"project": "shop", "action": "build", "batch": "2"}}, CodeBadRequest, []string{"need action install"}},
		"unknown project":   {[]any{cred, map[string]any{"project": "nope", "env": "test"}}, CodeUnknownProject, []string{`"nope"`, "blog, shop"}},
		"no project":        {[]any{cred, map[string]any{"env": "test"}}, CodeBadRequest, []string{"needs a project"}},
		"bad action":        {[]any{cred, map[string]any{"project": "shop", "action": "deploy"}}, CodeBadRequest, []string{"build or install"}},
		"install no env":    {[]any{cred, map[string]any{"project": "shop", "action": "install"}}, CodeBadRequest, []string{"needs env", "prod, test"}},
		"trunk as string":   {[]any{cred, map[string]any{"project": "shop", "env": "test", "trunk": "yes"}}, CodeBadRequest, []string{"trunk must be a boolean"}},
		"project as int":    {[]any{cred, map[string]any{"project": 1}}, CodeBadRequest, []string{"project must be a string, not int"}},
		"two selectors":     {[]any{cred, map[string]any{"project": "shop", "env": "test", "trunk": true, "tag": "v1"}}, CodeBadRequest, []string{"one source selector"}},
		"spaces in id":      {[]any{cred, map[string]any{"project": "shop", "env": "test", "request_id": "a b"}}, CodeBadRequest, []string{"request_id"}},
		"data not struct":   {[]any{cred, "shop"}, CodeInvalidParams, []string{"request_data must be a struct"}},
		"cred not struct":   {[]any{"alice", map[string]any{}}, CodeInvalidParams, []string{"credentials must be a struct"}},
		"username not str":  {[]any{map[string]any{"username": 7}, map[string]any{}}, CodeCredentialsRejected, []string{"username"}},
		"one param":         {[]any{cred}, CodeInvalidParams, []string{"(credentials, request_data)"}},
		"query no id":       {nil, CodeInvalidParams, nil},
		"list bad cred":     {nil, CodeInvalidParams, nil},
		"query id not str":  {nil, CodeInvalidParams, nil},
		"query empty id":    {nil, CodeUnknownTransaction, nil},
		"history too many":  {nil, CodeInvalidParams, nil},
		"list_projects ok":  {nil, 0, nil},
		"list_projects two": {nil, CodeInvalidParams, nil},
	}
	methods := map[string]struct {
		method string
		params []any
	}{
		"query no id":       {"query_transaction", nil},
		"list bad cred":     {"list_registrations", []any{"x"}},
		"query id not str":  {"query_transaction", []any{cred, 5}},
		"query empty id":    {"query_transaction", []any{""}},
		"history too many":  {"query_history", []any{cred, "a", "b"}},
		"list_projects ok":  {"list_projects", []any{cred}},
		"list_projects two": {"list_projects", []any{cred, cred}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			method, params := "request_action", tt.params
			if m, ok := methods[name]; ok {
				method, params = m.method, m.params
			}
			v, err := rpc(t, hs.URL, method, params...)
			if tt.code == 0 {
				require.NoError(t, err)
				assert.Equal(t, []any{"blog", "shop"}, v)
				return
			}
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tt.code, f.Code, f.Message)
			for _, m := range tt.msg {
				assert.Contains(t, f.Message, m)
			}
			assert.NotContains(t, f.Message, "hunter2")
		})
	}
}

func TestCappedReader(t *testing.T) {
	c := &cappedReader{r: strings.NewReader("12345"), left: 5}
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(b))
	assert.False(t, c.over)
	c = &cappedReader{r: strings.NewReader("123456"), left: 5}
	_, err = io.ReadAll(c)
	assert.Error(t, err)
	assert.True(t, c.over)
}
