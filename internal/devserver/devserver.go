// Package devserver starts the pinned Temporal dev server (`temporal server
// start-dev` of the temporal CLI v1.5.1): in memory, or on a SQLite file so
// it keeps everything across restarts, with relman's search attributes and
// a stated retention for its namespace. It is the one place that knows how:
// `relman dev`, the tests' harness and the benchmarks all start their
// servers here.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workflows"
)

// Pinned is the temporal CLI relman is tested with; `make bin/temporal`
// installs it.
const Pinned = "github.com/temporalio/cli/cmd/temporal@v1.5.1"

// Namespace is the namespace the dev server makes; relman's defaults use it.
const Namespace = "default"

// Retention is how long the dev server's namespace keeps a closed
// transaction. The server's own default is one day, after which `relman
// status` and the Web UI forget a demo; 30 days keeps last week's releases
// readable. The dev server cannot archive (its archival is off in code), so
// past this only relman's closed-transaction records remain.
const Retention = 30 * 24 * time.Hour

// Find finds the temporal CLI: $RELMAN_TEMPORAL_BIN, then bin/temporal in
// the working directory or the relman module, then PATH.
func Find() (string, error) {
	if p := os.Getenv("RELMAN_TEMPORAL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("RELMAN_TEMPORAL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	for _, p := range []string{
		filepath.Join("bin", "temporal"),
		filepath.Join(filepath.Dir(file), "..", "..", "bin", "temporal"),
	} {
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs, nil
			}
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", errors.New("no temporal CLI found; run `make bin/temporal` (go install " + Pinned + ") or set RELMAN_TEMPORAL_BIN")
}

// Options say how to run a server.
type Options struct {
	// Bin is the temporal CLI; empty: Find.
	Bin string
	// DBFile is the SQLite file; empty: everything in memory.
	DBFile string
	// IP to serve on; empty: 127.0.0.1.
	IP string
	// Port of the frontend (gRPC); 0: a free one.
	Port int
	// UIPort serves the Web UI there; 0: no Web UI.
	UIPort int
	// LogPath receives the server's output (appended); empty: discarded.
	LogPath string
	// LogLevel of the server; empty: warn.
	LogLevel string
	// ExtraArgs go to `temporal server start-dev` as they are.
	ExtraArgs []string
	// Retention of the namespace; 0: Retention.
	Retention time.Duration
	// Bare starts the server as `temporal server start-dev` does without
	// relman: no search attributes registered.
	Bare bool
}

// Server is a running dev server.
type Server struct {
	// Address is the frontend's host:port; UIURL the Web UI, if any.
	Address string
	UIURL   string
	// Retention is what the namespace keeps of closed workflows, as the
	// server reports it once started.
	Retention temporalclient.Retention

	o    Options
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs a server and returns once it answers health checks.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Bin == "" {
		bin, err := Find()
		if err != nil {
			return nil, err
		}
		o.Bin = bin
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if o.Retention == 0 {
		o.Retention = Retention
	}
	auto := o.Port == 0
	for attempt := 1; ; attempt++ {
		if auto {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			o.Port = p
		}
		s := &Server{o: o, Address: net.JoinHostPort(o.IP, strconv.Itoa(o.Port))}
		if o.UIPort > 0 {
			s.UIURL = fmt.Sprintf("http://localhost:%d", o.UIPort)
		}
		err := s.Start(ctx)
		// A server on a port picked here that exits at once has most
		// likely lost a race for one of the ports it opens beside it
		// (another process took one after FreePort looked): another
		// free port, up to three tries.
		if err == nil || !auto || !errors.Is(err, errExitedAtStart) || attempt == startAttempts {
			return s, err
		}
	}
}

// startAttempts bounds the tries of Start on ports it picks itself.
const startAttempts = 3

// errExitedAtStart: the server process ended before it served.
var errExitedAtStart = errors.New("temporal dev server exited at start")

// Start runs the server (again, after Stop or Kill: same port, same file)
// and waits until it serves.
func (s *Server) Start(ctx context.Context) error {
	if s.Running() {
		return fmt.Errorf("temporal server on %s already running", s.Address)
	}
	if c, err := net.DialTimeout("tcp", s.Address, 300*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("port %d is in use: another Temporal server or dev stack is running; stop it or choose another port", s.o.Port)
	}
	args := []string{"server", "start-dev",
		"--ip", s.o.IP,
		"--port", strconv.Itoa(s.o.Port),
		"--log-level", s.o.LogLevel,
		// No version check: the server must not call out.
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false",
	}
	if s.o.DBFile != "" {
		args = append(args, "--db-filename", s.o.DBFile)
	}
	if s.o.UIPort > 0 {
		args = append(args, "--ui-port", strconv.Itoa(s.o.UIPort))
	} else {
		args = append(args, "--headless")
	}
	for _, sa := range workflows.SearchAttributes {
		if s.o.Bare {
			break
		}
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	args = append(args, s.o.ExtraArgs...)
	var out io.Writer = io.Discard
	closeOut := func() {}
	if s.o.LogPath != "" {
		f, err := os.OpenFile(s.o.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "==== %s: start\n", time.Now().Format(time.RFC3339Nano))
		out, closeOut = f, func() { f.Close() }
	}
	cmd := exec.Command(s.o.Bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so a stop reaches the UI server it starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		closeOut()
		return fmt.Errorf("start temporal dev server: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() {
		s.err = cmd.Wait()
		fmt.Fprintf(out, "==== %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), s.err)
		closeOut()
		close(done)
	}()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := WaitServing(wctx, s.Address); err != nil {
		if !s.Running() {
			return fmt.Errorf("%w (%v); see %s", errExitedAtStart, s.err, orDiscarded(s.o.LogPath))
		}
		s.Kill()
		return fmt.Errorf("temporal dev server did not answer on %s within 90s: %w; see %s", s.Address, err, orDiscarded(s.o.LogPath))
	}
	if err := s.setRetention(wctx); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// setRetention states the namespace's retention (the server makes it with
// one day) and reads back what the server keeps, on every start: a SQLite
// file made before relman set it gets it too.
func (s *Server) setRetention(ctx context.Context) error {
	c, err := Dial(s.Address, "")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := temporalclient.SetRetention(ctx, c, Namespace, s.o.Retention); err != nil {
		return fmt.Errorf("temporal dev server: %w", err)
	}
	r, err := temporalclient.DescribeRetention(ctx, c, Namespace)
	if err != nil {
		return fmt.Errorf("temporal dev server: %w", err)
	}
	s.Retention = r
	return nil
}

// Running reports whether the server process runs.
func (s *Server) Running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Pid is the server's process id (0 when it does not run).
func (s *Server) Pid() int {
	if !s.Running() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Exited is closed when the server process exits.
func (s *Server) Exited() <-chan struct{} { return s.done }

// Stop sends SIGTERM to the server's process group and waits for it to
// exit; after timeout it kills it and says so.
func (s *Server) Stop(timeout time.Duration) error {
	if !s.Running() {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("temporal server did not stop within %s of SIGTERM", timeout)
	}
}

// Kill kills the server's process group (a crash) and waits for it.
func (s *Server) Kill() {
	if !s.Running() {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// FreePort asks the kernel for a free local TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dial connects a quiet client (its log discarded) to address.
func Dial(address, identity string) (client.Client, error) {
	return temporalclient.Dial(config.Temporal{Address: address}, slog.New(slog.DiscardHandler), identity)
}

// WaitServing waits until a Temporal frontend answers health checks at
// address.
func WaitServing(ctx context.Context, address string) error {
	var last error
	for {
		c, err := Dial(address, "")
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("temporal at %s not serving: %v", address, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func orDiscarded(p string) string {
	if p == "" {
		return "(its output was discarded)"
	}
	return p
}
