package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/relman/relman/internal/devserver"
)

// MainOptions shape the shared stack of a test package.
type MainOptions struct {
	// Name prefixes the temp dir and the messages ("e2e", "chaos").
	Name string
	// SkipShort skips the whole package under go test -short.
	SkipShort bool
	// RoleEnv and RoleLogLevel go to every role process (Env.RoleEnv).
	RoleEnv      []string
	RoleLogLevel string
	// ServerArgs go to `temporal server start-dev` as they are.
	ServerArgs []string
	// Setup starts what the package's tests share (role processes,
	// repositories) once the server serves.
	Setup func(ctx context.Context, e *Env) error
	// After runs once the tests passed, before the stack stops (saving
	// histories, say).
	After func(e *Env) error
}

// Main is a whole TestMain: it finds the pinned temporal CLI (a test
// package without it is skipped outside CI, and fails in CI), builds
// relman, starts an in-memory dev server and an Env in a temp dir, runs
// Setup and the tests, dumps every log when something failed, and stops
// it all. Use it as os.Exit(testenv.Main(m, testenv.MainOptions{...})).
func Main(m *testing.M, o MainOptions) int {
	if o.SkipShort && testing.Short() {
		fmt.Printf("%s: skipped in -short mode\n", o.Name)
		return 0
	}
	bin, err := devserver.Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			fmt.Fprintf(os.Stderr, "%s: %v\n", o.Name, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "%s: skipped: %v\n", o.Name, err)
		return 0
	}
	root, err := os.MkdirTemp("", "relman-"+o.Name+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(root)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "%s setup: %v\n", o.Name, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	relman, err := BuildRelman(ctx, root)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "logs"), 0o755); err != nil {
		return fail(err)
	}
	srvLog := filepath.Join(root, "logs", "temporal.log")
	srv, err := devserver.Start(ctx, devserver.Options{Bin: bin, LogPath: srvLog, LogLevel: "error", ExtraArgs: o.ServerArgs})
	if err != nil {
		return fail(err)
	}
	defer srv.Stop(20 * time.Second)
	e, err := New(root, relman, srv.Address)
	if err != nil {
		return fail(err)
	}
	e.Server, e.Temporal = srv, bin
	e.RoleEnv, e.RoleLogLevel = o.RoleEnv, o.RoleLogLevel
	e.AddLog(srvLog)
	defer e.Close()
	if o.Setup != nil {
		if err := o.Setup(ctx, e); err != nil {
			e.DumpLogs(os.Stderr, 6000)
			return fail(err)
		}
	}
	code := m.Run()
	if code != 0 {
		e.DumpLogs(os.Stderr, 6000)
		return code
	}
	if o.After != nil {
		if err := o.After(e); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", o.Name, err)
			return 1
		}
	}
	return code
}
