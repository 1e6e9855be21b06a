// Package e2e runs relman end to end: a real Temporal dev server (the pinned
// temporal CLI), a manager, a builder and two installer hosts as separate OS
// processes with their own install roots, and real git repositories.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relman/relman/harness/testenv"
)

// env is the shared stack every test in this package runs against: the
// harness's Env (root dir, relman binary, dev server, client) and what the
// tests release.
var env struct {
	*testenv.Env
	procs map[string]*testenv.Proc
	repo  string // the git repository of project "shop"
	hosts map[string]string
	// gatewayURL is the manager's XML-RPC gateway, on a free port.
	gatewayURL string
}

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.MainOptions{
		Name: "e2e",
		// Spans go to each role's output, so a test can follow one trace
		// across every role.
		RoleEnv:      []string{"OTEL_TRACES_EXPORTER=console"},
		RoleLogLevel: "debug",
		// A deleted closed workflow goes once the transfer queue's ack
		// level has passed its close (retention_test.go's forget): every
		// 30s by default, every second here.
		ServerArgs: []string{"--dynamic-config-value", `history.transferProcessorUpdateAckInterval="1s"`},
		Setup:      setup,
		After: func(*testenv.Env) error {
			if dir := os.Getenv("RELMAN_SAVE_ALL_HISTORIES"); dir != "" {
				return saveAllHistories(dir)
			}
			return nil
		},
	}))
}

func setup(ctx context.Context, e *testenv.Env) error {
	env.Env = e
	env.repo = filepath.Join(env.Root, "repos", "shop")
	if err := makeShopRepo(env.repo); err != nil {
		return err
	}
	if err := makeSvnRepo(filepath.Join(env.Root, "svn")); err != nil {
		return err
	}
	if _, err := testenv.InitRepo(filepath.Join(env.Root, "repos", "farm"), map[string]string{"index.html": "<h1>farm</h1>\n", "conf/app.conf": "v=1\n"}); err != nil {
		return err
	}
	if err := writeConfigs(); err != nil {
		return err
	}
	env.procs = map[string]*testenv.Proc{}
	for _, name := range []string{"manager", "builder", "host-a", "host-b"} {
		role := name
		if strings.HasPrefix(name, "host-") {
			role = "installer"
		}
		p, err := env.StartRole(name, role, filepath.Join(env.Root, name+".yaml"))
		if err != nil {
			return err
		}
		env.procs[name] = p
	}
	return env.WaitRegistered(ctx, "builder-e2e", "host-a", "host-b")
}

// git runs git in dir with the test identity (harness/testenv's).
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

func freeTCPPort() (int, error) { return testenv.FreePort() }

func writeConfigs() error {
	r := env.Root
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
# retention_test.go: closed-transaction records, in the roles' store.
artifacts: file://./artifacts
environments:
  test: {}
  prod: {}
  # environment_rules_test.go: a rolling rollout, a lock, an approval with a webhook.
  rolled: {rollout: {strategy: rolling, batch: 1, max_failures: 0}}
  serial: {lock: wait}
  gated: {approval: required, four_eyes: true, approval_timeout: 10m, webhooks: ["http://127.0.0.1:` + fmt.Sprint(safetyHookPort) + `/hook"]}
  # rollout_test.go: a rolling release that puts back the hosts it did.
  autoroll: {rollout: {strategy: rolling, batch: 1, max_failures: 0, auto_rollback: true}}
  # behavior_test.go: only the custom installer serves it.
  custom: {}
  # managers_test.go: only a host serving two managers serves it.
  multi: {}
  # fleet_test.go: served by the in-process simulated hosts only.
  fleet: {}
  fleetroll: {rollout: {strategy: rolling, batch: 50%, max_failures: 0, auto_rollback: true}}
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
  kept: {targets: [kept]}
  farm: {targets: [web, docs, conf]}
# host: 2m, not 30s: fleet_test.go runs 170 simulated hosts in this one
# process on a shared machine, where a poll can wait longer than 30s.
timeouts: {build: 5m, install: 2m, host: 2m}
`,
		"builder.yaml": `version: 1
name: builder-e2e
logging: {path: logs/builder.log, level: debug}
artifacts: file://./artifacts
# Shared with the builders of the other stacks here, which use this store.
signing_key_file: build-signing.key
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
  farm:
    source: {git: ./repos/farm}
    steps: [{name: build, run: [sh, -c, 'rm -rf out && mkdir -p out/web out/docs out/conf && cp index.html out/web/ && echo "$RELMAN_COMMIT" > out/docs/COMMIT && cp conf/* out/conf/']}]
    outputs: {web: {path: out/web}, docs: {path: out/docs}, conf: {path: out/conf}}
  orphan:
    source: {git: ./repos/shop}
    steps: [{name: build, run: ["true"]}]
    outputs: {web: {path: site}, nobody: {path: VERSION}}
  kept:
    source: {git: ./repos/shop}
    steps: [{name: build, run: [sh, -c, 'rm -rf kept && mkdir kept && echo "$RELMAN_COMMIT" > kept/COMMIT']}]
    outputs: {kept: {path: kept}}
`,
	}
	for _, h := range []string{"a", "b"} {
		cfgs["host-"+h+".yaml"] = fmt.Sprintf(`version: 1
host: host-%[1]s
logging: {path: logs/host-%[1]s.log, level: debug}
artifacts: file://./artifacts
work_dir: ./host-%[1]s/work
lease: 10s
# The manager's public key, which it writes beside its orders key.
trust: {manager_key_files: [orders.key.pub]}
environments:
  test:
    web: {behavior: unarchive, path: ./host-%[1]s/www}
    tool: {behavior: copy, path: ./host-%[1]s/bin/tool.sh, mode: "0755"}
    hook: {behavior: command, command: [sh, -c, 'if [ "$(hostname)" != x ] && [ %[1]s = a ]; then echo "hook refused on host-a" >&2; exit 4; fi']}
    kept: {behavior: unarchive, path: ./host-%[1]s/kept}
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
	for _, bin := range []string{"svnadmin", "svn"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("subversion is not installed (%s not on PATH): run `make prereqs-test`, which installs it with apt-get, or `apt-get install subversion`", bin)
		}
	}
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
