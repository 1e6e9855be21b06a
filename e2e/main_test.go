// Package e2e runs relman end to end: a real Temporal dev server (the pinned
// temporal CLI), a manager, a builder and two installer hosts as separate OS
// processes with their own install roots, and real git repositories.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devstack"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/testenv"
)

// env is the shared stack every test in this package runs against.
var env struct {
	root     string // temp dir holding everything
	relman   string // the relman binary
	temporal string // the temporal CLI
	address  string
	client   client.Client
	procs    map[string]*proc
	repo     string // the git repository of project "shop"
	hosts    map[string]string
	// gatewayURL is the manager's XML-RPC gateway, on a free port.
	gatewayURL string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := findTemporal()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e: "+err.Error())
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped: "+err.Error())
		return 0
	}
	env.temporal = bin
	root, err := os.MkdirTemp("", "relman-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.root = root
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(root)
		}
	}()
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup: "+err.Error())
		dumpLogs()
		teardown()
		return 1
	}
	defer teardown()
	code = m.Run()
	if code != 0 {
		dumpLogs()
	}
	if dir := os.Getenv("RELMAN_SAVE_ALL_HISTORIES"); dir != "" && code == 0 {
		if err := saveAllHistories(dir); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: save histories: "+err.Error())
			return 1
		}
	}
	return code
}

func findTemporal() (string, error) {
	if p := os.Getenv("RELMAN_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "bin", "temporal")
	if _, err := os.Stat(p); err == nil {
		return filepath.Abs(p)
	}
	return devstack.FindTemporal()
}

var server *testsuite.DevServer

func setup() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The relman binary under test, built once.
	env.relman = filepath.Join(env.root, "relman")
	_, file, _, _ := runtime.Caller(0)
	build := exec.CommandContext(ctx, "go", "build", "-o", env.relman, "./cmd/relman")
	build.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build: %v: %s", err, out)
	}
	var extra []string
	for _, sa := range devstack.SearchAttributes {
		extra = append(extra, "--search-attribute", sa+"=Keyword")
	}
	s, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: env.temporal,
		LogLevel:     "error",
		ExtraArgs:    extra,
		Stdout:       io.Discard,
		Stderr:       io.Discard,
	})
	if err != nil {
		return 1, fmt.Errorf("start dev server: %w", err)
	}
	server = s
	env.address = s.FrontendHostPort()
	env.client, err = temporalclient.Dial(config.Temporal{Address: env.address}, slog.New(slog.NewTextHandler(io.Discard, nil)), "")
	if err != nil {
		return 1, err
	}
	env.repo = filepath.Join(env.root, "repos", "shop")
	if err := makeShopRepo(env.repo); err != nil {
		return 1, err
	}
	if err := makeSvnRepo(filepath.Join(env.root, "svn")); err != nil {
		return 1, err
	}
	if err := writeConfigs(); err != nil {
		return 1, err
	}
	env.procs = map[string]*proc{}
	for _, name := range []string{"manager", "builder", "host-a", "host-b"} {
		role := name
		if strings.HasPrefix(name, "host-") {
			role = "installer"
		}
		p, err := startProc(name, role, filepath.Join(env.root, name+".yaml"))
		if err != nil {
			return 1, err
		}
		env.procs[name] = p
	}
	return 0, waitRegistrations(ctx, 3)
}

func startProc(name, role, cfg string) (*proc, error) {
	logPath := filepath.Join(env.root, "logs", name+".out")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(env.relman, role, "--config", cfg, "--address", env.address, "--log-level", "debug")
	// Spans go to the process's output, so a test can follow one trace
	// across every role.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=console")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *proc) stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.name, timeout)
	}
}

func waitRegistrations(ctx context.Context, n int) error {
	reg := registry.Registry{Client: env.client, ID: "relman-registry", ManagerQueue: "relman-manager"}
	for {
		ls, err := reg.List(ctx, time.Now())
		if err == nil && len(ls) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d registrations after waiting (last error %v)", len(ls), n, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func teardown() {
	for _, p := range env.procs {
		_ = p.stop(20 * time.Second)
	}
	if env.client != nil {
		env.client.Close()
	}
	if server != nil {
		_ = server.Stop()
	}
}

func dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(env.root, "logs", "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		fmt.Fprintf(os.Stderr, "==== %s (tail)\n%s\n", filepath.Base(f), b)
	}
}

// git runs git in dir with the test identity (internal/testenv's).
func git(dir string, args ...string) (string, error) { return testenv.Git(dir, args...) }

// makeShopRepo makes the project the tests release: a build script that
// copies site/ to out/web and writes out/tool.sh, failing on request.
func makeShopRepo(dir string) error {
	files := map[string]string{
		"build.sh": `#!/bin/sh
set -eu
rm -rf out && mkdir -p out/web/css
cp site/* out/web/
echo "$RELMAN_COMMIT" > out/web/COMMIT
echo "body{}" > out/web/css/site.css
printf '#!/bin/sh\necho tool %s\n' "$(cat VERSION)" > out/tool.sh
if [ -f FAIL ]; then
  i=0; while [ $i -lt 50 ]; do echo "noise line $i"; i=$((i+1)); done
  echo "compiler says: $(cat FAIL)" >&2
  exit 7
fi
`,
		"site/index.html": "<h1>shop v1</h1>\n",
		"VERSION":         "1\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			return err
		}
	}
	if _, err := git(dir, "init", "-q"); err != nil {
		return err
	}
	if _, err := git(dir, "add", "-A"); err != nil {
		return err
	}
	_, err := git(dir, "commit", "-q", "-m", "v1")
	return err
}

// commit changes files in the shop repo and returns the new commit.
func commit(t interface {
	Helper()
	Fatal(...any)
}, branch string, files map[string]string) string {
	t.Helper()
	if branch != "" {
		if _, err := git(env.repo, "checkout", "-q", "-B", branch); err != nil {
			t.Fatal(err)
		}
		defer git(env.repo, "checkout", "-q", "main")
	}
	for name, body := range files {
		p := filepath.Join(env.repo, name)
		if body == "" {
			if _, err := git(env.repo, "rm", "-q", name); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := git(env.repo, "add", "-A"); err != nil {
		t.Fatal(err)
	}
	if _, err := git(env.repo, "commit", "-q", "-m", "change"); err != nil {
		t.Fatal(err)
	}
	c, err := git(env.repo, "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// freeTCPPort asks the kernel for a free local port.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeConfigs() error {
	r := env.root
	if err := reserveSafetyHookPort(); err != nil {
		return err
	}
	gatewayPort, err := freeTCPPort()
	if err != nil {
		return err
	}
	env.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d/", gatewayPort)
	cfgs := map[string]string{
		"manager.yaml": fmt.Sprintf("version: 1\nlisten_port: %d\n", gatewayPort) + `logging: {path: logs/manager.log, level: debug}
auth: {anonymous: true}
environments:
  test: {}
  prod: {}
  # safety_test.go: a rolling rollout, a lock, an approval with a webhook.
  rolled: {rollout: {strategy: rolling, batch: 1, max_failures: 0}}
  serial: {lock: wait}
  gated: {approval: required, four_eyes: true, approval_timeout: 10m, webhooks: ["http://127.0.0.1:` + fmt.Sprint(safetyHookPort) + `/hook"]}
  # rollout_test.go: a rolling release that puts back the hosts it did.
  autoroll: {rollout: {strategy: rolling, batch: 1, max_failures: 0, auto_rollback: true}}
projects:
  shop: {targets: [web, tool]}
  legacy: {targets: [web]}
  slow: {targets: [web]}
  broken: {targets: [web]}
  orphan: {targets: [web, nobody]}
  nobuilder: {targets: [web]}
  hooked: {targets: [hook]}
  canary: {targets: [box]}
  site: {targets: [app]}
timeouts: {build: 5m, install: 2m, host: 30s}
`,
		"builder.yaml": `version: 1
name: builder-e2e
logging: {path: logs/builder.log, level: debug}
artifacts: file://./artifacts
work_dir: ./builder
lease: 10s
projects:
  shop:
    source: {git: ./repos/shop}
    steps: [{name: build, run: [sh, build.sh]}]
    outputs: {web: {path: out/web}, tool: {path: out/tool.sh}}
  slow:
    source: {git: ./repos/shop}
    steps:
      - name: sleep
        run: [sh, -c, 'echo $$ > "$RELMAN_SLOW_PIDFILE"; sleep 120']
    env: {RELMAN_SLOW_PIDFILE: ` + filepath.Join(r, "slow.pid") + `}
    outputs: {web: {path: site}}
  broken:
    source: {git: ./repos/shop}
    steps: [{name: compile, run: [sh, -c, 'echo FAIL-START; i=0; while [ $i -lt 40 ]; do echo "line $i"; i=$((i+1)); done; echo "error: missing semicolon" >&2; exit 3']}]
    outputs: {web: {path: site}}
  legacy:
    source: {svn: "file://` + filepath.Join(r, "svn", "repo") + `"}
    steps: [{name: build, run: [sh, -c, 'mkdir -p out && cp -r site/. out/']}]
    outputs: {web: {path: out}}
  canary:
    source: {git: ./repos/shop}
    steps: [{name: build, run: ["true"]}]
    outputs: {box: {path: VERSION}}
  hooked:
    source: {git: ./repos/shop}
    steps: [{name: build, run: ["true"]}]
    outputs: {hook: {path: VERSION}}
  site:
    source: {git: ./repos/shop}
    steps: [{name: build, run: [sh, -c, 'rm -rf out/app && mkdir -p out/app && cp -R app/. out/app/']}]
    outputs: {app: {path: out/app}}
  orphan:
    source: {git: ./repos/shop}
    steps: [{name: build, run: ["true"]}]
    outputs: {web: {path: site}, nobody: {path: VERSION}}
`,
	}
	for _, h := range []string{"a", "b"} {
		cfgs["host-"+h+".yaml"] = fmt.Sprintf(`version: 1
host: host-%[1]s
logging: {path: logs/host-%[1]s.log, level: debug}
artifacts: file://./artifacts
work_dir: ./host-%[1]s/work
lease: 10s
environments:
  test:
    web: {behavior: unarchive, path: ./host-%[1]s/www}
    tool: {behavior: copy, path: ./host-%[1]s/bin/tool.sh, mode: "0755"}
    hook: {behavior: command, command: [sh, -c, 'if [ "$(hostname)" != x ] && [ %[1]s = a ]; then echo "hook refused on host-a" >&2; exit 4; fi']}
    app:
      behavior: release
      path: ./host-%[1]s/app
      keep: 3
      shared: [logs]
      health: {command: [sh, -c, 'test -f index.html && test -d logs'], retries: 1, interval: 200ms}
  rolled:
    box: {behavior: command, path: ./host-%[1]s/rolled, command: [sh, -c, 'if [ %[1]s = a ]; then echo "box refused on host-a" >&2; exit 4; fi; mkdir -p "$RELMAN_PATH" && cp "$RELMAN_RESOURCE" "$RELMAN_PATH/box"']}
  serial:
    box: {behavior: command, path: ./host-%[1]s/serial, command: [sh, -c, 'sleep 2; mkdir -p "$RELMAN_PATH" && cp "$RELMAN_RESOURCE" "$RELMAN_PATH/box"']}
  gated:
    box: {behavior: copy, path: ./host-%[1]s/gated/box}
  autoroll:
    app:
      behavior: release
      path: ./host-%[1]s/autoroll
      health: {command: [sh, -c, 'test %[1]s = a || ! test -f BAD'], retries: 0}
`, h)
	}
	env.hosts = map[string]string{"host-a": filepath.Join(r, "host-a"), "host-b": filepath.Join(r, "host-b")}
	for name, body := range cfgs {
		if err := os.WriteFile(filepath.Join(r, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// makeSvnRepo makes a subversion repository in the seed's layout (trunk,
// branches, tags) over file://: r1 trunk, r2 tag 1.0, r3 a trunk change.
func makeSvnRepo(dir string) error {
	repo := filepath.Join(dir, "repo")
	url := "file://" + repo
	wc := filepath.Join(dir, "wc")
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "import", "trunk", "site"), 0o755); err != nil {
		return err
	}
	for _, d := range []string{"branches", "tags"} {
		if err := os.MkdirAll(filepath.Join(dir, "import", d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "import", "trunk", "site", "index.html"), []byte("legacy r1\n"), 0o644); err != nil {
		return err
	}
	steps := [][]string{
		{"svnadmin", "create", repo},
		{"svn", "import", "--non-interactive", "-q", "-m", "layout", filepath.Join(dir, "import"), url},
		{"svn", "copy", "--non-interactive", "-q", "-m", "tag 1.0", url + "/trunk", url + "/tags/1.0"},
		{"svn", "checkout", "--non-interactive", "-q", url + "/trunk", wc},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(wc, "site", "index.html"), []byte("legacy r3\n"), 0o644); err != nil {
		return err
	}
	return run("svn", "commit", "--non-interactive", "-q", "-m", "r3", wc)
}
