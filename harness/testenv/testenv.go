// Package testenv is the one harness for tests that run relman for real
// (e2e/, chaos/, the cluster tests) and for the benchmarks: it builds the
// relman binary once, starts a Temporal dev server (internal/devserver),
// writes role configs, runs managers, builders and installers as separate
// OS processes with their own logs, stops them gracefully (SIGTERM) or
// kills them (SIGKILL), waits for their registrations, makes git
// repositories, and dumps the logs when a test fails. Main is a whole
// TestMain around one shared stack.
//
// It is a normal package (not a _test file) so that several test packages
// can share it.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.yaml.in/yaml/v3"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// RepoRoot is the root of the relman module (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu   sync.Mutex
	buildPath string
)

// BuildRelman builds the relman binary into dir, once per test process:
// later calls return the first binary.
func BuildRelman(ctx context.Context, dir string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildPath != "" {
		if _, err := os.Stat(buildPath); err == nil {
			return buildPath, nil
		}
	}
	out := filepath.Join(dir, "relman")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/relman")
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/relman: %v: %s", err, b)
	}
	buildPath = out
	return out, nil
}

// FreePort asks the kernel for a free local TCP port.
func FreePort() (int, error) { return devserver.FreePort() }

// Dial connects a quiet client to address.
func Dial(address string) (client.Client, error) { return devserver.Dial(address, "relman-testenv") }

// Env is one relman deployment under test: a root directory, the relman
// binary, a Temporal address, a client, and the role processes started in it.
type Env struct {
	Root    string
	Relman  string
	Address string
	Client  client.Client
	// ManagerQueue and RegistryID name the manager the roles serve.
	ManagerQueue string
	RegistryID   string
	// RoleEnv is added to the environment of every role process, and
	// RoleLogLevel is its --log-level (default info).
	RoleEnv      []string
	RoleLogLevel string
	// Server is the Temporal server Main started, if it did, and Temporal
	// the temporal CLI it runs.
	Server   *devserver.Server
	Temporal string

	mu    sync.Mutex
	procs []*Proc
	logs  []string
}

// New makes an Env under root talking to Temporal at address.
func New(root, relman, address string) (*Env, error) {
	c, err := Dial(address)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "logs"), 0o755); err != nil {
		c.Close()
		return nil, err
	}
	return &Env{Root: root, Relman: relman, Address: address, Client: c,
		ManagerQueue: workflows.DefaultManagerQueue, RegistryID: workflows.DefaultRegistryID}, nil
}

// Close stops every running role (SIGTERM, then SIGKILL) and closes the
// client.
func (e *Env) Close() {
	e.mu.Lock()
	ps := slices.Clone(e.procs)
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		if p.Running() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = p.Stop(15 * time.Second) }()
		}
	}
	wg.Wait()
	if e.Client != nil {
		e.Client.Close()
	}
}

// Path is a path under the env's root.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Root}, elem...)...)
}

// AddLog makes DumpLogs include a file that is not a role's log (the
// Temporal server's, say).
func (e *Env) AddLog(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.logs = append(e.logs, path)
}

// Service is the common part of a role config for this env, version 1.
func (e *Env) Service() config.Service {
	return config.Service{Version: 1, Temporal: config.Temporal{Address: e.Address}, ManagerQueue: e.ManagerQueue, RegistryID: e.RegistryID}
}

// ManagerTrust is the trust section of an installer that obeys the
// manager whose orders key is ordersKeyFile: the public key file that
// manager writes beside it at start (<orders_key_file>.pub), read by the
// installer at each order, so the installer may start first.
func ManagerTrust(ordersKeyFile string) config.InstallerTrust {
	return config.InstallerTrust{ManagerKeyFiles: []string{auth.OrderPublicKeyFile(ordersKeyFile)}}
}

// Trust is ManagerTrust of a manager whose config is written at the env's
// root with the default orders_key_file (every manager there shares it).
func (e *Env) Trust() config.InstallerTrust {
	return ManagerTrust(e.Path(config.DefaultOrdersKeyFile))
}

// WriteConfig writes a role config (a *config.Manager, *config.Builder or
// *config.Installer, or any YAML-marshalable value) to name under the root
// and checks that relman would load it.
func (e *Env) WriteConfig(name string, cfg any) (string, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	p := e.Path(name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return "", err
	}
	if _, err := config.Load(p); err != nil {
		return "", fmt.Errorf("config %s does not load: %w\n%s", name, err, b)
	}
	return p, nil
}

// Proc is one role process.
type Proc struct {
	Name, Role, Config, Log string

	argv     []string
	args     []string
	extraEnv []string

	env  *Env
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartRole starts `relman ROLE --config cfg` as its own process (its own
// process group), output appended to logs/NAME.log.
func (e *Env) StartRole(name, role, cfg string, args ...string) (*Proc, error) {
	level := e.RoleLogLevel
	if level == "" {
		level = "info"
	}
	argv := append([]string{e.Relman, role, "--config", cfg, "--address", e.Address, "--log-level", level}, args...)
	p, err := e.StartProcess(name, nil, argv...)
	if err != nil {
		return nil, err
	}
	p.Role, p.Config, p.args = role, cfg, args
	return p, nil
}

// StartProcess starts argv as its own process (its own process group), with
// RoleEnv and env added to its environment and TEMPORAL_ADDRESS set to the
// env's server, output appended to logs/NAME.log: a binary built from
// relman's packages (an installer with a behavior of its own) runs like a
// role.
func (e *Env) StartProcess(name string, env []string, argv ...string) (*Proc, error) {
	logPath := e.Path("logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "==== %s: start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(append(os.Environ(), config.EnvAddress+"="+e.Address), e.RoleEnv...), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, argv: argv, extraEnv: env, env: e, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(f, "==== %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), p.err)
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// PeakRSS is the process's high-water resident set (VmHWM) in bytes; read
// it before the process exits.
func (p *Proc) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(v); len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// Tail is the last n bytes of the process's log.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Stop sends SIGTERM and waits for a graceful exit; after timeout the
// process group is killed and an error returned.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Running() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.Name, timeout)
	}
}

// Kill sends SIGKILL to the process group (no deregistration, no cleanup:
// a crash) and waits for the exit. Build steps run in their own process
// groups and outlive it, as they would on a real crash.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Restart starts the same role with the same config again (the process
// must have exited).
func (p *Proc) Restart() (*Proc, error) {
	if p.Running() {
		return nil, fmt.Errorf("%s is still running", p.Name)
	}
	if p.Role != "" {
		return p.env.StartRole(p.Name, p.Role, p.Config, p.args...)
	}
	return p.env.StartProcess(p.Name, p.extraEnv, p.argv...)
}

// Registry is the client side of the env's registry.
func (e *Env) Registry() registry.Registry {
	return registry.Registry{Client: e.Client, ID: e.RegistryID, ManagerQueue: e.ManagerQueue}
}

// Registered lists the ids of the live registrations.
func (e *Env) Registered(ctx context.Context) ([]string, error) {
	ls, err := e.Registry().List(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ls))
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// WaitRegistered waits until every id has a live registration.
func (e *Env) WaitRegistered(ctx context.Context, ids ...string) error {
	return e.waitRegs(ctx, func(have []string) bool {
		for _, id := range ids {
			if !slices.Contains(have, id) {
				return false
			}
		}
		return true
	}, fmt.Sprintf("registrations of %v", ids))
}

// WaitGone waits until none of ids has a live registration (deregistered or
// lease expired).
func (e *Env) WaitGone(ctx context.Context, ids ...string) error {
	return e.waitRegs(ctx, func(have []string) bool {
		for _, id := range ids {
			if slices.Contains(have, id) {
				return false
			}
		}
		return true
	}, fmt.Sprintf("%v gone from the registry", ids))
}

func (e *Env) waitRegs(ctx context.Context, ok func([]string) bool, what string) error {
	var have []string
	var err error
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		have, err = e.Registered(qctx)
		cancel()
		if err == nil && ok(have) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: have %v (last error %v)", what, have, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitPoller waits until a worker whose identity contains ident polls queue
// for the given kind of task (workflow or activity).
func (e *Env) WaitPoller(ctx context.Context, queue string, kind enums.TaskQueueType, ident string) error {
	var last []*taskqueue.PollerInfo
	for {
		resp, err := e.Client.DescribeTaskQueue(ctx, queue, kind)
		if err == nil {
			last = resp.GetPollers()
			for _, p := range last {
				if strings.Contains(p.GetIdentity(), ident) {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			var ids []string
			for _, p := range last {
				ids = append(ids, p.GetIdentity())
			}
			return fmt.Errorf("no poller %q on %s; pollers %v", ident, queue, ids)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Release starts a release on the env's manager queue (requestID may be
// empty) and returns the transaction id.
func (e *Env) Release(ctx context.Context, requestID string, req workflows.Request) (string, error) {
	return transaction.Start(ctx, e.Client, e.ManagerQueue, requestID, req)
}

// Final waits for the transaction's workflow to close and returns its
// detail (from the result, or from a failure's details) and the workflow's
// error. It rides out a Temporal server that is briefly away.
func (e *Env) Final(ctx context.Context, txid string) (*workflows.Detail, error) {
	for {
		var d workflows.Detail
		err := e.Client.GetWorkflow(ctx, txid, "").Get(ctx, &d)
		if err == nil {
			return &d, nil
		}
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.HasDetails() {
			if app.Details(&d) == nil && d.Status != "" {
				return &d, err
			}
		}
		var we *temporal.WorkflowExecutionError
		var ce *temporal.CanceledError
		if errors.As(err, &we) || errors.As(err, &ce) || ctx.Err() != nil {
			return &d, err
		}
		// A transport error (the server restarting): try again.
		select {
		case <-ctx.Done():
			return &d, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ReleaseAll starts every request, at most 20 at once (as many clients
// would), and returns each one's transaction id and start error, in order.
func (e *Env) ReleaseAll(ctx context.Context, reqs []workflows.Request) ([]string, []error) {
	ids := make([]string, len(reqs))
	errs := make([]error, len(reqs))
	e.each(len(reqs), 20, func(i int) { ids[i], errs[i] = e.Release(ctx, "", reqs[i]) })
	return ids, errs
}

// FinalAll waits for every transaction to end, at most 50 at once, and
// returns each one's final status and reason, in order.
func (e *Env) FinalAll(ctx context.Context, ids []string) ([]workflows.Status, []string) {
	statuses := make([]workflows.Status, len(ids))
	reasons := make([]string, len(ids))
	e.each(len(ids), 50, func(i int) {
		if d, _ := e.Final(ctx, ids[i]); d != nil {
			statuses[i], reasons[i] = d.Status, d.Reason
		}
	})
	return statuses, reasons
}

// each runs f(0..n-1), at most width at once, and returns when all have.
func (e *Env) each(n, width int, f func(i int)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

// ListByID returns the executions with this workflow id (visibility).
func (e *Env) ListByID(ctx context.Context, id string) (int, error) {
	resp, err := e.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowId = '%s'", id),
	})
	if err != nil {
		return 0, err
	}
	return len(resp.GetExecutions()), nil
}

// Forget makes Temporal forget a closed transaction as its retention would:
// the frontend's DeleteWorkflowExecution of run (empty: the latest) in the
// default namespace, then a wait until neither the execution nor its
// visibility record answers.
func (e *Env) Forget(ctx context.Context, txid, run string) error {
	_, err := e.Client.WorkflowService().DeleteWorkflowExecution(ctx, &workflowservice.DeleteWorkflowExecutionRequest{
		Namespace:         config.DefaultNamespace,
		WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: txid, RunId: run},
	})
	if err != nil {
		return fmt.Errorf("delete %s: %w", txid, err)
	}
	for {
		_, err := e.Client.DescribeWorkflowExecution(ctx, txid, "")
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			if n, err := e.ListByID(ctx, txid); err == nil && n == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Temporal still knows %s: %w", txid, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CLI runs the real relman CLI in-process against the env's server.
func (e *Env) CLI(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = cli.Execute(ctx, append(args, "--address", e.Address), cli.Options{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

// DumpLogs writes the last tail bytes of every role log (and added logs)
// to w.
func (e *Env) DumpLogs(w io.Writer, tail int) {
	e.mu.Lock()
	seen := map[string]bool{}
	var files []string
	for _, p := range e.procs {
		if !seen[p.Log] {
			seen[p.Log] = true
			files = append(files, p.Log)
		}
	}
	for _, f := range e.logs {
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	e.mu.Unlock()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if tail > 0 && len(b) > tail {
			b = b[len(b)-tail:]
		}
		fmt.Fprintf(w, "==== %s (last %d bytes)\n%s\n", f, len(b), b)
	}
}

// DumpOnFailure dumps the logs through t.Log when t has failed by the end
// of the test.
func (e *Env) DumpOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			var b bytes.Buffer
			e.DumpLogs(&b, 8000)
			t.Log("role logs:\n" + b.String())
		}
	})
}

// Git runs git in dir with a fixed identity and no system config.
func Git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "user.name=relman test", "-c", "user.email=test@relman.invalid", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

var repoMu sync.Mutex

// InitRepo makes a git repository at dir holding files and returns the
// commit.
func InitRepo(dir string, files map[string]string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if _, err := Git(dir, "init", "-q"); err != nil {
		return "", err
	}
	return Commit(dir, files)
}

// Commit writes files (an empty body removes the file) into the repository
// at dir, commits them and returns the new commit.
func Commit(dir string, files map[string]string) (string, error) {
	repoMu.Lock()
	defer repoMu.Unlock()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if body == "" {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			return "", err
		}
	}
	if _, err := Git(dir, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := Git(dir, "commit", "-q", "--allow-empty", "-m", "change"); err != nil {
		return "", err
	}
	return Git(dir, "rev-parse", "HEAD")
}
