package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testcluster"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workers"
	"github.com/relman/relman/workflows"
)

// server is one Temporal dev server and the manager serving it. Every row
// runs relman and its floor against the same server.
type server struct {
	label string
	srv   *devserver.Server
	addr  string
	c     client.Client // the bench's own client: starts and waits
	// pids are the Temporal server's processes (the dev server, or a
	// cluster's services), for their CPU time.
	pids  []int
	roles []*inproc // stopped by stop, last first
	// cluster is the Temporal cluster behind a cluster row; nil for a dev
	// server.
	cluster *testcluster.Cluster
}

// cpu is the Temporal server's CPU time so far.
func (s *server) cpu() time.Duration {
	var t time.Duration
	for _, pid := range s.pids {
		t += cpuTime(pid)
	}
	return t
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

func dial(addr, identity string) (client.Client, error) {
	return temporalclient.Dial(config.Temporal{Address: addr, Namespace: "default"}, quietLogger(), identity)
}

// startServer starts the pinned temporal CLI's dev server: in memory when
// dbFile is empty, else on that SQLite file.
func startServer(ctx context.Context, bin string, more []string, label, dbFile, logPath string) (*server, error) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	srv, err := devserver.Start(sctx, devserver.Options{Bin: bin, DBFile: dbFile, LogPath: logPath, LogLevel: "error", ExtraArgs: more})
	if err != nil {
		return nil, fmt.Errorf("start dev server (%s): %w", label, err)
	}
	s := &server{label: label, srv: srv, addr: srv.Address, pids: []int{srv.Pid()}}
	if s.c, err = dial(s.addr, "bench-client"); err != nil {
		_ = srv.Stop(20 * time.Second)
		return nil, err
	}
	return s, nil
}

func (s *server) stop() {
	for i := len(s.roles) - 1; i >= 0; i-- {
		s.roles[i].stop()
	}
	s.roles = nil
	if s.c != nil {
		s.c.Close()
	}
	if s.srv != nil {
		_ = s.srv.Stop(20 * time.Second)
	}
	if s.cluster != nil {
		_ = s.cluster.Stop()
	}
}

// inproc is a relman role (or a floor worker) running in this process.
type inproc struct {
	name   string
	cancel context.CancelFunc
	done   chan error
	client client.Client // closed on stop when owned
}

func (r *inproc) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "bench: %s did not stop within 30s\n", r.name)
	}
	if r.client != nil {
		r.client.Close()
	}
}

// runRole runs f in a goroutine with its own client (shared when c is
// given) until the returned role is stopped.
func (s *server) runRole(name string, c client.Client, f func(ctx context.Context, c client.Client, log *slog.Logger) error) (*inproc, error) {
	r := &inproc{name: name, done: make(chan error, 1)}
	if c == nil {
		var err error
		if c, err = dial(s.addr, temporalclient.Identity(name)); err != nil {
			return nil, err
		}
		r.client = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		err := f(ctx, c, quietLogger())
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
		}
		r.done <- err
	}()
	return r, nil
}

// waitRegistered waits until every id ("builder/x", "installer/y") holds a
// live lease in the registry.
func (s *server) waitRegistered(ctx context.Context, ids ...string) error {
	reg := registry.Registry{Client: s.c, ID: workflows.DefaultRegistryID, ManagerQueue: workflows.DefaultManagerQueue}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ls, err := reg.List(ctx, time.Now())
		have := map[string]bool{}
		for _, l := range ls {
			have[string(l.Role)+"/"+l.ID] = true
		}
		missing := 0
		for _, id := range ids {
			if !have[id] {
				missing++
			}
		}
		if err == nil && missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d roles did not register within 90s (last error %v)", missing, len(ids), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// release runs one relman release through the client path (transaction.Start)
// and returns the time from the start request to INSTALL_COMPLETED.
// With rebuild the builder builds even a commit it built before (row 2
// measures the artifact path); without it the default build once reuses
// that build's artifacts.
func (s *server) release(ctx context.Context, project, env string, rebuild bool) (time.Duration, *workflows.Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	txid, err := transaction.Start(ctx, s.c, workflows.DefaultManagerQueue, "", workflows.Request{
		Project: project, Action: workflows.ActionInstall, Env: env, Requester: "bench",
		Rebuild: rebuild,
	})
	if err != nil {
		return 0, nil, err
	}
	var d workflows.Detail
	err = s.c.GetWorkflow(ctx, txid, "").Get(ctx, &d)
	el := time.Since(t0)
	d.Transaction = txid
	if err != nil {
		return el, &d, fmt.Errorf("release %s of %s into %s: %w", txid, project, env, err)
	}
	if d.Status != workflows.StatusInstallCompleted {
		return el, &d, fmt.Errorf("release %s ended %s: %s", txid, d.Status, d.Reason)
	}
	return el, &d, nil
}

// settle waits until no closed-transaction recorder runs any more (the
// records of the releases before are written) and says how long it took.
func (s *server) settle(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	for {
		resp, err := s.c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.RecordTransactionWorkflowName),
		})
		if err != nil {
			return time.Since(t0), err
		}
		if resp.GetCount() == 0 {
			return time.Since(t0), nil
		}
		if time.Since(t0) > 3*time.Minute {
			return time.Since(t0), fmt.Errorf("%d records still being written after 3 minutes", resp.GetCount())
		}
		select {
		case <-ctx.Done():
			return time.Since(t0), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// timeline prints a workflow's events with their offsets from the first.
func (s *server) timeline(ctx context.Context, id string) string {
	it := s.c.GetWorkflowHistory(ctx, id, "", false, 0)
	var sb strings.Builder
	var t0 time.Time
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			break
		}
		t := ev.GetEventTime().AsTime()
		if t0.IsZero() {
			t0 = t
		}
		fmt.Fprintf(&sb, "  %6.1f ms  %s\n", float64(t.Sub(t0))/1e6, ev.GetEventType())
	}
	return sb.String()
}

// historyLength counts a workflow's events.
func (s *server) historyLength(ctx context.Context, id string) int {
	it := s.c.GetWorkflowHistory(ctx, id, "", false, 0)
	n := 0
	for it.HasNext() {
		if _, err := it.Next(); err != nil {
			return n
		}
		n++
	}
	return n
}

// managerConfig is the one manager of a server: every project and
// environment any row uses. It keeps closed-transaction records in the
// builders' store under root, as the dev stack does.
func managerConfig(addr, root string, envs []string) (*config.Manager, error) {
	m := &config.Manager{
		Service:        config.Service{Version: config.Version, Temporal: config.Temporal{Address: addr}, Logging: config.Logging{Level: "error"}},
		Auth:           config.Auth{Anonymous: true},
		Artifacts:      "file://" + filepath.Join(root, "artifacts"),
		RecordsKeyFile: filepath.Join(root, "records.key"),
		OrdersKeyFile:  ordersKeyFile(root),
		Environments:   map[string]config.Environment{},
		Projects: map[string]config.ProjectDef{
			"noop": {Targets: []string{"app"}},
			"big":  {Targets: []string{"data"}},
		},
		// A host that never picks up its install fails the row in a minute,
		// not in the default five.
		Timeouts: config.ReleaseTimeouts{Build: 20 * time.Minute, Install: 20 * time.Minute, Host: 90 * time.Second},
	}
	// The bench releases through its client, not the gateway (row 8 runs
	// a manager of its own with the gateway on).
	m.Gateway.Off = true
	// Every environment as users run it: the default lock (wait).
	for _, e := range envs {
		m.Environments[e] = config.Environment{}
	}
	m.Default()
	return m, m.Validate()
}

func builderConfig(addr, name, root, repo string, projects map[string]config.BuildBehavior) (*config.Builder, error) {
	b := &config.Builder{
		Service:   config.Service{Version: config.Version, Temporal: config.Temporal{Address: addr}, Logging: config.Logging{Level: "error"}},
		Name:      name,
		Artifacts: "file://" + filepath.Join(root, "artifacts"),
		WorkDir:   filepath.Join(root, "work", name),
		Projects:  projects,
	}
	b.Default()
	return b, b.Validate()
}

func noopProject(repo string) config.BuildBehavior {
	return config.BuildBehavior{
		Source:  config.Source{Git: repo},
		Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
		Outputs: map[string]config.Output{"app": {Path: "app"}},
	}
}

func bigProject(repo, data string) config.BuildBehavior {
	return config.BuildBehavior{
		Source: config.Source{Git: repo},
		Steps: []config.Step{{Name: "copy", Run: []string{"sh", "-c",
			`cp -r "$BENCH_DATA" out && echo "$RELMAN_TRANSACTION" > out/TXID`}}},
		Env:     map[string]string{"BENCH_DATA": data},
		Outputs: map[string]config.Output{"data": {Path: "out"}},
	}
}

// ordersKeyFile is the order key of every manager of the bench under root:
// its hosts trust the public key the managers write beside it.
func ordersKeyFile(root string) string { return filepath.Join(root, config.DefaultOrdersKeyFile) }

// installerConfig is one host installing target into dir/<env>/<target>
// for every env listed.
func installerConfig(addr, host, root, target string, envs []string) (*config.Installer, error) {
	in := &config.Installer{
		Service:      config.Service{Version: config.Version, Temporal: config.Temporal{Address: addr}, Logging: config.Logging{Level: "error"}},
		Host:         host,
		Trust:        testenv.ManagerTrust(ordersKeyFile(root)),
		Artifacts:    "file://" + filepath.Join(root, "artifacts"),
		WorkDir:      filepath.Join(root, "hosts", host, "work"),
		Environments: map[string]map[string]config.InstallBehavior{},
	}
	for _, e := range envs {
		in.Environments[e] = map[string]config.InstallBehavior{
			target: {Behavior: config.BehaviorUnarchive, Path: filepath.Join(root, "hosts", host, e, target)},
		}
	}
	in.Default()
	return in, in.Validate()
}

func (s *server) startManager(root string, envs []string, noRecords bool) error {
	mc, err := managerConfig(s.addr, root, envs)
	if err != nil {
		return err
	}
	if noRecords {
		mc.Artifacts, mc.RecordsKeyFile = "", ""
	}
	r, err := s.runRelman("manager", mc, nil)
	if err != nil {
		return err
	}
	s.roles = append(s.roles, r)
	return nil
}

func startBuilder(s *server, cfg *config.Builder) (*inproc, error) {
	return s.runRelman(cfg.Name, cfg, nil)
}

// startInstaller runs host, installing the target "app" for every env
// listed (installerConfig), in this process, on its own client or on
// shared.
func (b *bench) startInstaller(s *server, host string, envs []string, shared client.Client) (*inproc, error) {
	cfg, err := installerConfig(s.addr, host, b.root, "app", envs)
	if err != nil {
		return nil, err
	}
	return s.runRelman(cfg.Host, cfg, shared)
}

// runRelman runs a relman role in this process, exactly as `relman
// manager|builder|installer` does (workers.Start, the supervisor relman
// dev and the fleet harness use too), on its own client or on shared.
func (s *server) runRelman(name string, cfg config.File, shared client.Client) (*inproc, error) {
	r := &inproc{name: name, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	run := workers.Start(ctx, cfg, workers.Options{Client: shared, Logger: quietLogger(), Gateway: xmlrpc.Serve})
	go func() {
		err := run.Err()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", name, err)
		}
		r.done <- err
	}()
	return r, nil
}

// cpuTime is a process's user+system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stopAll stops in-process roles concurrently.
func stopAll(rs []*inproc) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()
}
