// Package devstack runs relman on one machine: the pinned Temporal dev server
// (SQLite file, Web UI), a manager, a builder and two installer hosts from
// the example configs, and a git repository of the example project. All
// state lives under one directory, so a restart keeps transactions and
// registrations.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/examples"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/xmlrpc"
	"github.com/relman/relman/workers"
	"github.com/relman/relman/workflows"
)

// Options say where the stack lives and listens.
type Options struct {
	Dir         string
	TemporalBin string // empty: FindTemporal
	Port        int    // Temporal gRPC, default 7233
	UIPort      int    // Web UI, default 8233; negative: no UI
	// GatewayPort is the manager's XML-RPC gateway; 0 picks a free port,
	// negative: no gateway. `relman dev` passes 10000 unless told otherwise.
	GatewayPort int
	Out         io.Writer
	// With adjusts every role's Temporal client options (telemetry).
	With func(*client.Options)
}

// Stack is a running dev stack.
type Stack struct {
	Dir     string
	Address string
	UIURL   string
	// GatewayURL is the XML-RPC gateway, empty when it is off.
	GatewayURL string
	// Hosts maps each installer host to its install root.
	Hosts  map[string]string
	Client client.Client

	server       *exec.Cmd
	serverExited chan error
	gateway      *xmlrpc.Listener
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	errs         chan error
}

// SearchAttributes are registered with the dev server at start.
var SearchAttributes = []string{workflows.SAProject, workflows.SAEnv, workflows.SAStatus, workflows.SARequester}

// FindTemporal finds the pinned temporal CLI: $RELMAN_TEMPORAL_BIN, then
// ./bin/temporal, then PATH.
func FindTemporal() (string, error) {
	if p := os.Getenv("RELMAN_TEMPORAL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("RELMAN_TEMPORAL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := filepath.Abs(filepath.Join("bin", "temporal")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("no temporal CLI found; run `make bin/temporal` (go install github.com/temporalio/cli/cmd/temporal@v1.5.1) or set RELMAN_TEMPORAL_BIN")
}

// Start brings the stack up and returns once every role is serving.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.Port == 0 {
		o.Port = 7233
	}
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	bin := o.TemporalBin
	if bin == "" {
		if bin, err = FindTemporal(); err != nil {
			return nil, err
		}
	}
	if err := writeExamples(dir); err != nil {
		return nil, err
	}
	if err := makeRepo(ctx, filepath.Join(dir, "repos", "template")); err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir, Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)), Hosts: map[string]string{}, errs: make(chan error, 8)}
	if o.UIPort > 0 {
		s.UIURL = fmt.Sprintf("http://localhost:%d", o.UIPort)
	}
	if err := s.startServer(ctx, bin, o); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.startRoles(rctx, dir, o.With); err != nil {
		s.Stop()
		return nil, err
	}
	if o.GatewayPort >= 0 {
		if err := s.startGateway(dir, o.GatewayPort); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) startServer(ctx context.Context, bin string, o Options) error {
	if c, err := net.DialTimeout("tcp", s.Address, 300*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("port %d is in use: another Temporal server or dev stack is running; stop it or pass --port", o.Port)
	}
	args := []string{"server", "start-dev",
		"--db-filename", filepath.Join(s.Dir, "temporal.db"),
		"--ip", "127.0.0.1",
		"--port", strconv.Itoa(o.Port),
		"--log-level", "warn",
	}
	if o.UIPort > 0 {
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
	} else {
		args = append(args, "--headless")
	}
	for _, sa := range SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "logs", "temporal.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start temporal dev server: %w", err)
	}
	s.server = cmd
	exited := make(chan error, 1)
	s.serverExited = exited
	go func() { exited <- cmd.Wait(); logf.Close() }()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			s.server = nil
			return fmt.Errorf("temporal dev server exited at start (%v); see %s", err, filepath.Join(s.Dir, "logs", "temporal.log"))
		case <-ctx.Done():
			s.stopServer()
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		c, err := temporalclient.Dial(config.Temporal{Address: s.Address, Namespace: "default"}, log, "")
		if err == nil {
			_, herr := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			if herr == nil {
				s.Client = c
				return nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			s.stopServer()
			return fmt.Errorf("temporal dev server did not answer on %s within 90s; see %s", s.Address, filepath.Join(s.Dir, "logs", "temporal.log"))
		}
	}
}

func (s *Stack) startRoles(ctx context.Context, dir string, with func(*client.Options)) error {
	if with == nil {
		with = func(*client.Options) {}
	}
	mc, err := config.LoadManager(filepath.Join(dir, "manager.yaml"))
	if err != nil {
		return err
	}
	bc, err := config.LoadBuilder(filepath.Join(dir, "builder.yaml"))
	if err != nil {
		return err
	}
	var ics []*config.Installer
	for _, f := range []string{"installer-a.yaml", "installer-b.yaml"} {
		ic, err := config.LoadInstaller(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		ics = append(ics, ic)
		if b, ok := ic.Environments["test"]["template"]; ok {
			s.Hosts[ic.Host] = b.Path
		}
	}
	run := func(name string, svc *config.Service, f func(context.Context, client.Client, *slog.Logger) error) error {
		svc.Temporal.Address = s.Address
		log, closeLog, err := roleLogger(svc.Logging)
		if err != nil {
			return err
		}
		o, err := temporalclient.Options(svc.Temporal, log.With("role", name), temporalclient.Identity(name), with)
		if err != nil {
			return err
		}
		c, err := client.Dial(o)
		if err != nil {
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer closeLog()
			defer c.Close()
			if err := f(ctx, c, log.With("role", name)); err != nil {
				s.errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
		return nil
	}
	if err := run("manager", &mc.Service, func(ctx context.Context, c client.Client, l *slog.Logger) error {
		return workers.Manager(ctx, c, mc, l)
	}); err != nil {
		return err
	}
	if err := run(bc.Name, &bc.Service, func(ctx context.Context, c client.Client, l *slog.Logger) error {
		return workers.Builder(ctx, c, bc, l)
	}); err != nil {
		return err
	}
	for _, ic := range ics {
		if err := run(ic.Host, &ic.Service, func(ctx context.Context, c client.Client, l *slog.Logger) error {
			return workers.Installer(ctx, c, ic, l)
		}); err != nil {
			return err
		}
	}
	return s.waitRegistered(ctx, 1+len(ics))
}

// startGateway serves the manager's XML-RPC gateway on 127.0.0.1 with the
// stack's client, logging to the manager's log.
func (s *Stack) startGateway(dir string, port int) error {
	mc, err := config.LoadManager(filepath.Join(dir, "manager.yaml"))
	if err != nil {
		return err
	}
	log, closeLog, err := roleLogger(mc.Logging)
	if err != nil {
		return err
	}
	mc.ListenAddress, mc.ListenPort = "127.0.0.1", port
	gw, err := xmlrpc.ListenGateway(s.Client, mc, log.With("role", "manager", "component", "xml-rpc"), nil)
	if err != nil {
		closeLog()
		return fmt.Errorf("%w; pass --gateway-port with a free port, or 0 for any", err)
	}
	s.gateway, s.GatewayURL = gw, gw.URL()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer closeLog()
		if err := <-gw.Done(); err != nil {
			s.errs <- fmt.Errorf("xml-rpc gateway: %w", err)
		}
	}()
	return nil
}

// waitRegistered returns once the builder and every host hold a lease, so a
// release right after Start is planned against all of them.
func (s *Stack) waitRegistered(ctx context.Context, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		v, err := s.Client.QueryWorkflow(ctx, workflows.DefaultRegistryID, "", workflows.RegistrationsQuery)
		if err == nil {
			var ls []workflows.Lease
			if v.Get(&ls) == nil {
				live := 0
				for _, l := range ls {
					if l.Expires.After(time.Now()) {
						live++
					}
				}
				if live >= n {
					return nil
				}
			}
		}
		select {
		case err := <-s.errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("the builder and installer hosts did not register within 60s; see the logs under " + filepath.Join(s.Dir, "logs"))
}

// Errs reports a role that stopped on its own.
func (s *Stack) Errs() <-chan error { return s.errs }

// Stop stops the roles (they deregister), then the Temporal server.
func (s *Stack) Stop() {
	if s.gateway != nil {
		_ = s.gateway.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.Client != nil {
		s.Client.Close()
	}
	s.stopServer()
}

func (s *Stack) stopServer() {
	if s.server == nil || s.server.Process == nil {
		return
	}
	pgid := s.server.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.serverExited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.serverExited
	}
	s.server = nil
}

func roleLogger(l config.Logging) (*slog.Logger, func(), error) {
	level, err := config.ParseLevel(l.Level)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})), func() { f.Close() }, nil
}

// writeExamples copies the example configs into dir unless they are there
// already, so edits made in dir survive restarts.
func writeExamples(dir string) error {
	for _, name := range []string{"manager.yaml", "builder.yaml", "installer-a.yaml", "installer-b.yaml"} {
		dst := filepath.Join(dir, name)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		b, err := examples.FS.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// makeRepo makes a git repository of the example project, once.
func makeRepo(ctx context.Context, repo string) error {
	if _, err := os.Stat(filepath.Join(repo, ".git")); err == nil {
		return nil
	}
	err := fs.WalkDir(examples.FS, "template", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("template", p)
		dst := filepath.Join(repo, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := examples.FS.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if filepath.Ext(p) == ".sh" {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
	if err != nil {
		return fmt.Errorf("example project: %w", err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=relman dev", "-c", "user.email=dev@relman.invalid", "commit", "-q", "-m", "example project"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s in %s: %v: %s", args[0], repo, err, out)
		}
	}
	return nil
}
