//go:build upgrade

package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/workflows"
)

// The roles of the stack, by process name; the installers' names are their
// host ids.
const builderName = "builder-up"

var hosts = []string{"host-a", "host-b"}

// stack is one relman deployment whose processes the test replaces one by
// one, as an operator would.
type stack struct {
	t     *testing.T
	procs map[string]*testenv.Proc
	bins  map[string]string // the binary each role runs now
	gates string
	repo  string
	regs  *regMonitor
	// managerConfig is the manager's config but for its gateway port: two
	// managers run side by side during a surge, each on its own port.
	managerConfig string
	managers      int
}

func newStack(t *testing.T) *stack {
	s := &stack{t: t, procs: map[string]*testenv.Proc{}, bins: map[string]string{}, gates: env.Path("gates"), repo: env.Path("repos", "app")}
	if err := os.MkdirAll(s.gates, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.InitRepo(s.repo, map[string]string{"app/index.html": "v1\n", "VERSION": "1\n"}); err != nil {
		t.Fatal(err)
	}
	s.writeConfigs()
	return s
}

// writeConfigs writes the configs an operator keeps: one manager and one
// builder config both versions load, and per installer one for the
// previous release and one for this one (which needs trust: the manager's
// order key, the upgrade note of this release).
func (s *stack) writeConfigs() {
	manager := `version: 1
listen_port: LISTEN_PORT
auth: {anonymous: true}
artifacts: file://./artifacts
environments:
  test: {}
  gated: {approval: required}
  serial: {lock: wait}
projects:
  slow: {targets: [web]}
  site: {targets: [app]}
  box: {targets: [box]}
# heartbeat: a build or install handed back by a stopped worker is retried
# on its replacement after 5s, not 30s.
timeouts: {build: 5m, install: 3m, host: 3m, heartbeat: 5s}
`
	// The slow build appends to build.started and waits for build.open.
	builder := fmt.Sprintf(`version: 1
name: %[1]s
artifacts: file://./artifacts
signing_key_file: build-signing.key
work_dir: ./builder
lease: 10s
projects:
  slow:
    source: {git: ./repos/app}
    steps:
      - name: wait
        run: [sh, -c, 'echo "$RELMAN_COMMIT" >> %[2]s/build.started; while [ ! -f %[2]s/build.open ]; do sleep 0.2; done; rm -rf out && mkdir -p out && cp -R app/. out/']
    outputs: {web: {path: out}}
  site:
    source: {git: ./repos/app}
    steps: [{name: build, run: [sh, -c, 'rm -rf out && mkdir -p out && cp -R app/. out/']}]
    outputs: {app: {path: out}}
  box:
    source: {git: ./repos/app}
    steps: [{name: build, run: ["true"]}]
    outputs: {box: {path: VERSION}}
`, builderName, s.gates)
	s.managerConfig = manager
	files := map[string]string{"builder.yaml": builder}
	for _, h := range hosts {
		// The serial install marks its start (serial-HOST-TXID) and waits
		// for install.open, or install.open-TXID for its transaction alone.
		old := fmt.Sprintf(`version: 1
host: %[1]s
artifacts: file://./artifacts
work_dir: ./%[1]s/work
lease: 10s
environments:
  test:
    web: {behavior: unarchive, path: ./%[1]s/www}
    app: {behavior: release, path: ./%[1]s/app, keep: 3}
  gated:
    box: {behavior: copy, path: ./%[1]s/gated/box}
  serial:
    box: {behavior: command, path: ./%[1]s/serial, command: [sh, -c, 'touch %[2]s/serial-%[1]s-$RELMAN_TRANSACTION; while [ ! -f %[2]s/install.open ] && [ ! -f %[2]s/install.open-$RELMAN_TRANSACTION ]; do sleep 0.2; done; mkdir -p "$RELMAN_PATH" && cp "$RELMAN_RESOURCE" "$RELMAN_PATH/box"']}
`, h, s.gates)
		files[h+".old.yaml"] = old
		files[h+".yaml"] = old + "# The manager's public order key, which it writes beside orders.key.\ntrust: {manager_key_files: [orders.key.pub]}\n"
	}
	for name, body := range files {
		if err := os.WriteFile(env.Path(name), []byte(body), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// config is the config file of a role for the binary it runs.
func (s *stack) config(name, bin string) string {
	if strings.HasPrefix(name, "host-") && bin == previous {
		return env.Path(name + ".old.yaml")
	}
	if strings.HasPrefix(name, "host-") {
		return env.Path(name + ".yaml")
	}
	if role(name) == "manager" {
		port, err := testenv.FreePort()
		if err != nil {
			s.t.Fatal(err)
		}
		s.managers++
		p := env.Path(fmt.Sprintf("manager-%d.yaml", s.managers))
		if err := os.WriteFile(p, []byte(strings.Replace(s.managerConfig, "LISTEN_PORT", fmt.Sprint(port), 1)), 0o644); err != nil {
			s.t.Fatal(err)
		}
		return p
	}
	return env.Path(name + ".yaml")
}

func role(name string) string {
	switch {
	case strings.HasPrefix(name, "host-"):
		return "installer"
	case strings.HasPrefix(name, "builder"):
		return "builder"
	}
	return "manager"
}

// start runs the role name with bin; its log is logs/NAME.log (both
// versions append to it, each start marked).
func (s *stack) start(name, bin string) *testenv.Proc {
	s.t.Helper()
	p, err := env.StartProcess(strings.TrimSuffix(name, "-surge"), nil, bin, role(name), "--config", s.config(name, bin), "--address", env.Address, "--log-level", "debug")
	if err != nil {
		s.t.Fatal(err)
	}
	s.procs[strings.TrimSuffix(name, "-surge")] = p
	s.bins[strings.TrimSuffix(name, "-surge")] = bin
	return p
}

// stop stops a role gracefully (SIGTERM: deregister, drain, exit).
func (s *stack) stop(name string) {
	s.t.Helper()
	if s.regs != nil && name != "manager" {
		s.regs.stopping(regID(name))
	}
	if err := s.procs[name].Stop(40 * time.Second); err != nil {
		s.t.Logf("stop %s: %v", name, err)
	}
}

func regID(name string) string {
	if name == "builder" {
		return builderName
	}
	return name
}

// replace replaces a builder or installer: stop the old process, start
// the new binary on the same config dir and work dir, wait until it is
// registered.
func (s *stack) replace(ctx context.Context, name, bin string) {
	s.t.Helper()
	s.stop(name)
	at := time.Now()
	if s.regs != nil {
		s.regs.starting(regID(name), at)
	}
	s.start(name, bin)
	// Registered (or renewed) by this process since it started, not a
	// lease the stopped one left.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		ls, _ := registrations(ctx)
		if l, ok := ls[regID(name)]; ok && !l.Renewed.Before(at) {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s (%s) did not register within a minute", name, version(bin))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// registrations is what `relman registrations -o json` (this release's
// CLI) lists, by id, and its stderr and exit code.
func registrations(ctx context.Context) (map[string]workflows.Lease, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	out, errOut, code := env.CLI(qctx, "registrations", "-o", "json")
	cancel()
	have := map[string]workflows.Lease{}
	var ls []workflows.Lease
	if code == 0 && json.Unmarshal([]byte(out), &ls) == nil {
		for _, l := range ls {
			have[l.ID] = l
		}
	}
	var err error
	if code != 0 || strings.Contains(errOut, "warning") {
		err = fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errOut))
	}
	return have, err
}

// replaceManager replaces the manager with a surge, as the guide says: the
// new one starts and polls before the old one stops.
func (s *stack) replaceManager(ctx context.Context, bin string) {
	s.t.Helper()
	old := s.procs["manager"]
	p := s.start("manager-surge", bin)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := env.WaitPoller(ctx, env.ManagerQueue, enums.TASK_QUEUE_TYPE_WORKFLOW, fmt.Sprintf(":%d", p.Pid())); err != nil {
		s.t.Fatalf("the %s manager does not poll: %v\n%s", version(bin), err, p.Tail(3000))
	}
	if err := old.Stop(30 * time.Second); err != nil {
		s.t.Logf("stop old manager: %v", err)
	}
}

func version(bin string) string {
	if bin == previous {
		return "previous"
	}
	return "new"
}

// cli runs a relman CLI binary against the server and returns its stdout.
func cli(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--address", env.Address)...)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(), "RELMAN_REQUESTER=upgrade-test")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("relman (%s) %s: %v: %s%s", version(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// release starts a release with a CLI and returns its transaction id.
func (s *stack) release(ctx context.Context, bin string, args ...string) string {
	s.t.Helper()
	out, err := cli(ctx, bin, append([]string{"release"}, args...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		s.t.Fatalf("release %v printed no transaction id", args)
	}
	return f[len(f)-1]
}

// status is a transaction's status word as a CLI prints it.
func status(ctx context.Context, bin, txid string) (string, error) {
	out, err := cli(ctx, bin, "status", txid)
	return strings.TrimSpace(out), err
}

func (s *stack) waitStatus(ctx context.Context, bin, txid, want string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last string
	var err error
	for {
		last, err = status(ctx, bin, txid)
		if err == nil && last == want {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s: status %q (err %v), want %s", txid, last, err, want)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// waitFile waits until path exists.
func (s *stack) waitFile(ctx context.Context, path string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s never appeared", path)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *stack) open(gate string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.gates, gate), nil, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) shut(gate string) {
	s.t.Helper()
	if err := os.Remove(filepath.Join(s.gates, gate)); err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
}

// buildsStarted counts the slow builds started so far.
func (s *stack) buildsStarted() int {
	b, _ := os.ReadFile(filepath.Join(s.gates, "build.started"))
	return strings.Count(string(b), "\n")
}

func (s *stack) waitBuilds(ctx context.Context, n int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for s.buildsStarted() < n {
		select {
		case <-ctx.Done():
			s.t.Fatalf("%d slow builds started, want %d", s.buildsStarted(), n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// regMonitor polls `relman registrations` (this release's CLI) and
// measures, per builder or host, the longest time it was missing while its
// process ran and had registered (a live gap), and the longest time from a
// deliberate stop to the replacement's first registration (a restart gap).
type regMonitor struct {
	mu         sync.Mutex
	seen       map[string]bool
	missing    map[string]time.Time
	stopAt     map[string]time.Time
	startAt    map[string]time.Time
	liveGap    time.Duration
	liveWho    string
	restartGap time.Duration
	polls      int
	failed     int
	lastErr    string
	// events: when each id went missing and came back, for the report.
	events []string
	stopCh chan struct{}
	done   chan struct{}
}

func startRegMonitor(ctx context.Context, ids []string) *regMonitor {
	m := &regMonitor{seen: map[string]bool{}, missing: map[string]time.Time{}, stopAt: map[string]time.Time{}, startAt: map[string]time.Time{}, stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			m.poll(ctx, ids)
			select {
			case <-m.stopCh:
				return
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *regMonitor) poll(ctx context.Context, ids []string) {
	have, err := registrations(ctx)
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polls++
	if err != nil {
		m.failed++
		m.lastErr = err.Error()
	}
	for _, id := range ids {
		l, ok := have[id]
		if at, stopping := m.stopAt[id]; stopping {
			// Restarting: over once the replacement's own lease shows (a
			// lease of the stopped process may linger).
			if st, started := m.startAt[id]; ok && started && !l.Renewed.Before(st) {
				m.restartGap = max(m.restartGap, now.Sub(at))
				delete(m.stopAt, id)
				delete(m.startAt, id)
				m.seen[id] = true
			}
			continue
		}
		if ok {
			if at, ok := m.missing[id]; ok {
				if g := now.Sub(at); g > m.liveGap {
					m.liveGap, m.liveWho = g, id
				}
				delete(m.missing, id)
				m.events = append(m.events, fmt.Sprintf("%s %s back after %s", now.Format("15:04:05.0"), id, now.Sub(at).Round(100*time.Millisecond)))
			}
			m.seen[id] = true
			continue
		}
		if m.seen[id] {
			if _, ok := m.missing[id]; !ok {
				m.missing[id] = now
				m.events = append(m.events, fmt.Sprintf("%s %s missing (read error: %v)", now.Format("15:04:05.0"), id, err))
			}
		}
	}
}

// stopping marks id as deliberately stopped: its absence until its
// replacement registers is a restart gap.
func (m *regMonitor) stopping(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if at, ok := m.missing[id]; ok {
		if g := now.Sub(at); g > m.liveGap {
			m.liveGap, m.liveWho = g, id
		}
		delete(m.missing, id)
	}
	m.stopAt[id] = now
}

// starting notes when id's replacement starts.
func (m *regMonitor) starting(id string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.startAt[id] = at
}

// take returns the gaps measured since the last take (open ones counted up
// to now) and starts anew.
func (m *regMonitor) take() (live time.Duration, who string, restart time.Duration, polls, failed int, lastErr string, events []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for id, at := range m.missing {
		if g := now.Sub(at); g > m.liveGap {
			m.liveGap, m.liveWho = g, id
		}
		m.missing[id] = now
	}
	for id, at := range m.stopAt {
		// Not seen again yet: restarting up to now.
		m.restartGap = max(m.restartGap, now.Sub(at))
		m.events = append(m.events, fmt.Sprintf("%s %s not seen since its restart began %s ago", now.Format("15:04:05.0"), id, now.Sub(at).Round(100*time.Millisecond)))
	}
	live, who, restart, polls, failed, lastErr, events = m.liveGap, m.liveWho, m.restartGap, m.polls, m.failed, m.lastErr, m.events
	m.events = nil
	m.liveGap, m.liveWho, m.restartGap, m.polls, m.failed, m.lastErr = 0, "", 0, 0, 0, ""
	return
}

func (m *regMonitor) stop() {
	close(m.stopCh)
	<-m.done
}

// failedTasks lists every WorkflowTaskFailed event since since, in every
// workflow of the namespace: workflow id, type, cause and failure.
func failedTasks(ctx context.Context, since time.Time) ([]string, error) {
	var out []string
	var token []byte
	for {
		resp, err := env.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token, PageSize: 1000})
		if err != nil {
			return nil, err
		}
		for _, ex := range resp.GetExecutions() {
			id, run := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			it := env.Client.GetWorkflowHistory(ctx, id, run, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				if err != nil {
					return nil, fmt.Errorf("history of %s: %w", id, err)
				}
				if ev.GetEventType() != enums.EVENT_TYPE_WORKFLOW_TASK_FAILED || ev.GetEventTime().AsTime().Before(since) {
					continue
				}
				a := ev.GetWorkflowTaskFailedEventAttributes()
				msg := a.GetFailure().GetMessage()
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				out = append(out, fmt.Sprintf("%s (%s) event %d at %s: %s: %s", id, ex.GetType().GetName(), ev.GetEventId(), ev.GetEventTime().AsTime().Format("15:04:05.000"), a.GetCause(), msg))
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}
