package xmlrpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testcert"
)

// clock is a settable clock for the throttle.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestThrottleGrowsAndForgets: the first failures are free, then each one
// locks out for twice as long; a lock-out refuses even the right password
// for that user from that address; a login clears the user's count; other
// users, and the same user from another address, are not held back by it:
// a guesser elsewhere cannot lock a user out where the user is.
func TestThrottleGrowsAndForgets(t *testing.T) {
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	th := newThrottle(clk.now, slog.New(slog.NewTextHandler(&logs, nil)))
	for range loginFreeUser {
		require.NoError(t, th.check("alice@local", "10.0.0.1"))
		th.failed("alice@local", "10.0.0.1")
	}
	require.NoError(t, th.check("alice@local", "10.0.0.1"), "the free failures lock nobody out")
	var delays []time.Duration
	for range 4 {
		th.failed("alice@local", "10.0.0.1")
		require.NoError(t, th.check("alice@local", "10.0.0.2"), "alice elsewhere is not locked out")
		err := th.check("alice@local", "10.0.0.1")
		var f *Fault
		require.ErrorAs(t, err, &f, "locked out from the guessing address")
		assert.Equal(t, CodeThrottled, f.Code)
		assert.Contains(t, f.Message, "too many failed logins for user alice@local from 10.0.0.1")
		start := clk.now()
		for th.check("alice@local", "10.0.0.1") != nil {
			clk.add(time.Second)
		}
		delays = append(delays, clk.now().Sub(start))
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, delays, "the delay doubles")
	assert.Equal(t, 4, strings.Count(logs.String(), "login lock-out"), "each lock-out is logged")
	require.NoError(t, th.check("bob@local", "10.0.0.3"), "another user from another address")
	th.succeeded("alice@local", "10.0.0.1")
	th.failed("alice@local", "10.0.0.1")
	require.NoError(t, th.check("alice@local", "10.0.0.1"), "a login cleared alice's count")
	// The delay stops growing at its bound.
	for range 40 {
		th.failed("carol@local", "")
	}
	s := th.users[userAt{"carol@local", ""}]
	assert.Equal(t, loginMaxDelay, s.until.Sub(clk.now()))
}

// TestThrottleLocksOutAnAddressSprayingUsers: one address guessing a new
// user name each time (no user ever past its free failures) is locked out
// once it is past the address's own free failures, for every user, even
// one with the right password; other addresses are not, and an address
// quiet for loginForget starts again from nothing.
func TestThrottleLocksOutAnAddressSprayingUsers(t *testing.T) {
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	th := newThrottle(clk.now, slog.New(slog.NewTextHandler(&logs, nil)))
	const spray = "192.0.2.7"
	for i := range loginFreeAddr {
		require.NoError(t, th.check(fmt.Sprintf("user%d@local", i), spray), "failure %d is still free", i+1)
		th.failed(fmt.Sprintf("user%d@local", i), spray)
	}
	require.NoError(t, th.check("alice@local", spray), "the address's free failures lock nobody out")
	th.failed("user-next@local", spray)
	err := th.check("alice@local", spray)
	var f *Fault
	require.ErrorAs(t, err, &f, "past its free failures the address is locked out, whoever logs in")
	assert.Equal(t, CodeThrottled, f.Code)
	assert.Contains(t, f.Message, "too many failed logins from "+spray)
	assert.Contains(t, logs.String(), "address="+spray)
	require.NoError(t, th.check("alice@local", "192.0.2.8"), "another address is not held back")
	// The lock-out ends; one more failure locks out for twice as long.
	clk.add(time.Second)
	require.NoError(t, th.check("alice@local", spray))
	th.failed("user-again@local", spray)
	require.Error(t, th.check("alice@local", spray))
	clk.add(time.Second)
	require.Error(t, th.check("alice@local", spray), "the second lock-out lasts 2 s")
	clk.add(time.Second)
	require.NoError(t, th.check("alice@local", spray))
	// Quiet for loginForget: its count starts again.
	clk.add(loginForget + time.Second)
	th.failed("user-later@local", spray)
	require.NoError(t, th.check("alice@local", spray), "a failure after an hour's quiet is free again")
}

// tlsGateway serves a gateway with authentication on, over TLS with a
// test CA, on 127.0.0.1: alice (tester) and dave (tester) log in with
// passwords.
func tlsGateway(t *testing.T) (url, ca string, logs *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	f, err := auth.Load(users)
	require.NoError(t, err)
	require.NoError(t, f.SetPassword("alice", "alice-Right-pw-1", []string{"tester"}))
	require.NoError(t, f.SetPassword("dave", "dave-Right-pw-2", []string{"tester"}))
	require.NoError(t, f.Save())
	cert := testcert.Make(t, dir)
	cfg := &config.Manager{
		Service:       config.Service{Version: config.Version},
		Environments:  map[string]config.Environment{"test": {}},
		Projects:      map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
		ListenAddress: "127.0.0.1",
		Gateway:       config.Gateway{TLSCertPath: cert.Cert, TLSKeyPath: cert.Key},
		Auth:          config.Auth{UsersFile: users},
	}
	cfg.Default()
	require.NoError(t, cfg.Validate())
	logs = &syncBuffer{}
	l, err := ListenGateway(&Gateway{Config: cfg, Log: slog.New(slog.NewTextHandler(logs, nil)), Secret: []byte("0123456789abcdef0123456789abcdef")}, "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	require.True(t, strings.HasPrefix(l.URL(), "https://"))
	return l.URL(), cert.CA, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// python runs script with Python 3 (argv: url, ca) and decodes the JSON it
// prints.
func python(t *testing.T, script string, args ...string) map[string]any {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	out, err := exec.Command("python3", append([]string{"-c", script}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	return res
}

// pyClient is Python's xmlrpc.client over https, verifying the gateway
// against the test CA, optionally from another source address.
const pyClient = `
import json, ssl, sys, http.client, xmlrpc.client
url, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)

class From(xmlrpc.client.SafeTransport):
    def __init__(self, source):
        super().__init__(context=ctx)
        self.source = source
    def make_connection(self, host):
        self._connection = host, http.client.HTTPSConnection(host, context=ctx, source_address=(self.source, 0))
        return self._connection[1]

def call(proxy, f):
    try:
        return {"result": f(proxy)}
    except xmlrpc.client.Fault as e:
        return {"fault": e.faultCode, "string": e.faultString}
`

// TestGatewayServesTLS: a real TLS client (Python's xmlrpc.client over
// https, verifying the gateway's certificate against the test CA) logs in;
// a client that does not trust the CA, and a plain-HTTP client, get
// nothing.
func TestGatewayServesTLS(t *testing.T) {
	url, ca, _ := tlsGateway(t)
	res := python(t, pyClient+`
out = {}
relman = xmlrpc.client.ServerProxy(url, context=ctx)
out["ok"] = call(relman, lambda r: r.list_projects(dict(username="alice", password="alice-Right-pw-1")))
try:
    xmlrpc.client.ServerProxy(url).list_projects(dict(username="alice", password="alice-Right-pw-1"))
    out["untrusted"] = "answered"
except ssl.SSLError as e:
    out["untrusted"] = "refused: " + type(e).__name__
try:
    xmlrpc.client.ServerProxy(url.replace("https://", "http://")).list_projects(dict(username="alice", password="alice-Right-pw-1"))
    out["plain"] = "answered"
except Exception as e:
    out["plain"] = "refused: " + type(e).__name__
print(json.dumps(out))
`, url, ca)
	assert.Equal(t, map[string]any{"result": []any{"shop"}}, res["ok"])
	assert.Contains(t, res["untrusted"], "refused", "a client that does not trust the CA gets nothing")
	assert.Contains(t, res["plain"], "refused", "no plain HTTP on the TLS port")
}

// TestGatewayThrottlesLogins: 60 wrong passwords in a row for alice are
// slowed (locked out for growing delays) and refused, even alice's right
// password while she is locked out; dave's right password from another
// address still works.
func TestGatewayThrottlesLogins(t *testing.T) {
	url, ca, logs := tlsGateway(t)
	res := python(t, pyClient+`
out = {"codes": []}
relman = xmlrpc.client.ServerProxy(url, context=ctx)
for i in range(60):
    r = call(relman, lambda p: p.list_projects(dict(username="alice", password="wrong-%d" % i)))
    out["codes"].append(r.get("fault", 0))
    out["last"] = r.get("string", "")
out["alice_right"] = call(relman, lambda p: p.list_projects(dict(username="alice", password="alice-Right-pw-1")))
other = xmlrpc.client.ServerProxy(url, transport=From("127.0.0.2"))
out["dave_elsewhere"] = call(other, lambda p: p.list_projects(dict(username="dave", password="dave-Right-pw-2")))
print(json.dumps(out))
`, url, ca)
	codes := res["codes"].([]any)
	require.Len(t, codes, 60)
	checked, throttled := 0, 0
	for i, c := range codes {
		switch int(c.(float64)) {
		case CodeCredentialsRejected:
			checked++
		case CodeThrottled:
			throttled++
		default:
			t.Fatalf("attempt %d: fault %v", i+1, c)
		}
	}
	for i := range loginFreeUser {
		assert.EqualValues(t, CodeCredentialsRejected, codes[i], "attempt %d is free", i+1)
	}
	// After the free ones each check locks alice out for twice as long,
	// so however slowly the 60 arrive only a handful are even checked.
	t.Logf("of 60 wrong passwords %d were checked, %d refused unchecked", checked, throttled)
	assert.Less(t, checked, loginFreeUser+12, "wrong passwords checked: %d of 60", checked)
	assert.Greater(t, throttled, 40)
	assert.Contains(t, res["last"], "too many failed logins")
	assert.Contains(t, res["last"], "try again in")
	assert.EqualValues(t, CodeThrottled, res["alice_right"].(map[string]any)["fault"], "locked out: even the right password waits")
	assert.Equal(t, map[string]any{"result": []any{"shop"}}, res["dave_elsewhere"], "another user from another address logs in")
	assert.Contains(t, logs.String(), "login lock-out")
	assert.NotContains(t, logs.String(), "wrong-", "no password in the log")
}
