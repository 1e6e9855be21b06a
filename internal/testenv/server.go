package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/relman/relman/internal/devstack"
)

// searchAttributeArgs registers relman's search attributes at server start.
func searchAttributeArgs() []string {
	var args []string
	for _, sa := range devstack.SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	return args
}

// MemoryServer is a dev server holding everything in memory: fast, gone
// when stopped.
type MemoryServer struct {
	s   *testsuite.DevServer
	log *os.File
}

// StartMemoryServer starts the temporal CLI at bin as an in-memory dev
// server on a free port (testsuite.StartDevServer with ExistingPath, so
// nothing is downloaded); its output goes to logPath.
func StartMemoryServer(ctx context.Context, bin, logPath string) (*MemoryServer, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	s, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin,
		LogLevel:     "error",
		ExtraArgs:    searchAttributeArgs(),
		Stdout:       f,
		Stderr:       f,
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start dev server: %w", err)
	}
	return &MemoryServer{s: s, log: f}, nil
}

// Address is the frontend's host:port.
func (m *MemoryServer) Address() string { return m.s.FrontendHostPort() }

// Stop stops the server.
func (m *MemoryServer) Stop() error {
	err := m.s.Stop()
	m.log.Close()
	return err
}

// SQLiteServer is a dev server on a SQLite file, run with the temporal CLI
// directly, so it can be stopped and started again on the same port and
// file: everything it held survives.
type SQLiteServer struct {
	Bin, DB, LogPath string
	IP               string
	Port             int

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewSQLiteServer describes a server; Start runs it. A zero port picks a
// free one.
func NewSQLiteServer(bin, db, logPath string, port int) (*SQLiteServer, error) {
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		port = p
	}
	return &SQLiteServer{Bin: bin, DB: db, LogPath: logPath, IP: "127.0.0.1", Port: port}, nil
}

// Address is the frontend's host:port.
func (s *SQLiteServer) Address() string { return net.JoinHostPort(s.IP, strconv.Itoa(s.Port)) }

// Running reports whether the server process runs.
func (s *SQLiteServer) Running() bool {
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

// Start runs the server and waits until it answers health checks.
func (s *SQLiteServer) Start(ctx context.Context) error {
	if s.Running() {
		return fmt.Errorf("temporal server on %s already running", s.Address())
	}
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== %s: start\n", time.Now().Format(time.RFC3339Nano))
	args := append([]string{"server", "start-dev",
		"--db-filename", s.DB,
		"--ip", s.IP,
		"--port", strconv.Itoa(s.Port),
		"--headless",
		"--log-level", "error",
	}, searchAttributeArgs()...)
	cmd := exec.Command(s.Bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start temporal server: %w", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	done := s.done
	go func() {
		s.err = cmd.Wait()
		fmt.Fprintf(f, "==== %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), s.err)
		f.Close()
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
	if err := WaitServing(wctx, s.Address()); err != nil {
		if !s.Running() {
			return fmt.Errorf("temporal server exited at start (%v); see %s", s.err, s.LogPath)
		}
		s.Kill()
		return err
	}
	return nil
}

// Stop sends SIGTERM and waits for the server to exit (SIGKILL after
// timeout).
func (s *SQLiteServer) Stop(timeout time.Duration) error {
	if !s.Running() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(timeout):
		s.Kill()
		return fmt.Errorf("temporal server did not stop within %s of SIGTERM", timeout)
	}
}

// Kill kills the server's process group and waits for it.
func (s *SQLiteServer) Kill() {
	if !s.Running() {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}
