package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/relman/relman/workflows"
)

// TestManagerBinary builds my-manager, runs it against a Temporal dev
// server, and logs in through its XML-RPC gateway from Python's
// xmlrpc.client with realm htpasswd: the authenticator and its freeze
// work in the binary as they do in the unit tests.
func TestManagerBinary(t *testing.T) {
	temporalBin := temporalBinary(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "my-manager")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A manager needs relman's search attributes on its namespace.
	var sas []temporal.SearchAttributeUpdate
	for _, name := range workflows.SearchAttributes {
		sas = append(sas, temporal.NewSearchAttributeKeyKeyword(name).ValueSet(""))
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{ExistingPath: temporalBin, LogLevel: "error", Stdout: io.Discard, Stderr: io.Discard,
		SearchAttributes: temporal.NewSearchAttributes(sas...)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	h := files(t, dir)
	port := freePort(t)
	cfg := filepath.Join(dir, "manager.yaml")
	write(t, cfg, fmt.Sprintf(`version: 1
temporal: {address: %s}
manager_queue: my-manager-test
registry_id: my-manager-test-registry
listen_port: %d
environments: {test: {}, prod: {}}
projects: {template: {targets: [template]}}
auth:
  users_file: users.yaml
  realms: {htpasswd: {}}
policy:
  - {roles: [testers], actions: [install, read], projects: ["*"], environments: [test]}
  - {roles: [deployers], actions: [build, install, read], projects: ["*"], environments: ["*"]}
`, srv.FrontendHostPort(), port))
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg, "--htpasswd", h.PasswordFile, "--htgroup", h.GroupFile, "--freeze-file", h.FreezeFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if strings.Contains(logs.String(), "alice-Htpasswd-1") {
			t.Error("the password is in the manager's log")
		}
		if t.Failed() {
			t.Logf("my-manager's log:\n%s", logs.String())
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitGateway(t, url, done)

	alice := `dict(username='alice', password='alice-Htpasswd-1', realm='htpasswd')`
	prod := `dict(project='template', action='install', env='prod')`
	tests := map[string]struct {
		expr  string
		fault int
		want  string
	}{
		"alice logs in":          {`relman.list_projects(` + alice + `)`, 0, `["template"]`},
		"wrong password":         {`relman.list_projects(dict(username='alice', password='nope', realm='htpasswd'))`, 3, "credentials rejected"},
		"no such realm":          {`relman.list_projects(dict(username='alice', password='nope', realm='htpassword'))`, 3, `unknown realm "htpassword"; this manager knows realms: htpasswd, local`},
		"bob may not go to prod": {`relman.request_action(dict(username='bob', password='bob-Htpasswd-2', realm='htpasswd'), ` + prod + `)`, 6, `user bob@htpasswd may not install project "template" in environment "prod"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res, fault, msg := call(t, url, tc.expr)
			if fault != tc.fault {
				t.Fatalf("fault %d (%s), want %d", fault, msg, tc.fault)
			}
			if tc.fault == 0 {
				msg = res
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("%q does not say %q", msg, tc.want)
			}
		})
	}
	// The freeze is the authenticator's Authorizer at work: the policy
	// allows alice into prod, the realm refuses.
	write(t, h.FreezeFile, "release weekend\n")
	_, fault, msg := call(t, url, `relman.request_action(`+alice+`, `+prod+`)`)
	if fault != 6 || !strings.Contains(msg, `realm "htpasswd" refuses: a change freeze is on (release weekend)`) {
		t.Fatalf("during a freeze: fault %d: %s", fault, msg)
	}
}

// call runs one XML-RPC call from Python; it returns the result as JSON, or
// the fault.
func call(t *testing.T, url, expr string) (result string, fault int, faultString string) {
	t.Helper()
	script := `
import json, sys, xmlrpc.client
relman = xmlrpc.client.ServerProxy(sys.argv[1])
try:
    print(json.dumps({"result": json.dumps(` + expr + `)}))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": f.faultCode, "string": f.faultString}))
`
	out, err := exec.Command("python3", "-c", script, url).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v: %s", err, out)
	}
	var r struct {
		Result string `json:"result"`
		Fault  int    `json:"fault"`
		String string `json:"string"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return r.Result, r.Fault, r.String
}

// waitGateway returns once the gateway answers, or fails if the manager
// exits first.
func waitGateway(t *testing.T, url string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			exited <- err // the cleanup waits for the exit too
			t.Fatalf("my-manager exited: %v", err)
		default:
		}
		err := exec.Command("python3", "-c", "import xmlrpc.client,sys; xmlrpc.client.ServerProxy(sys.argv[1]).system.listMethods()", url).Run()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the gateway on %s did not answer within 60s", url)
}

// temporalBinary finds the pinned temporal CLI as relman's tests do; the
// test needs it, so it is skipped without one, except in CI.
func temporalBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RELMAN_TEMPORAL_BIN"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "bin", "temporal")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no temporal CLI: run make bin/temporal or set RELMAN_TEMPORAL_BIN")
	}
	t.Skip("no temporal CLI: run make bin/temporal or set RELMAN_TEMPORAL_BIN")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
