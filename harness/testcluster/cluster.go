// Package testcluster starts and controls a production-style Temporal for
// tests: PostgreSQL with its own data directory and port, the temporal and
// temporal_visibility databases made with Temporal's own sql tool, and the
// frontend, history, matching and worker services as four processes that a
// test can SIGKILL and restart one at a time. It also starts SeaweedFS as a
// real S3-compatible artifact store with authentication on.
//
// The dev server that the other tests use is one process on SQLite; users
// run clusters like this one, and what breaks there (a service that goes
// away while the others stay, a namespace without relman's search
// attributes, a SMALLINT port column) does not show on the dev server.
//
// Binaries come from `make cluster-tools` (bin/temporal-server,
// bin/temporal-sql-tool, bin/temporal-schema, bin/weed) and Debian's
// postgresql package; every port is below 32768.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/relman/relman/workflows"
)

// Namespace is the namespace the cluster creates, the one relman uses by
// default.
const Namespace = "default"

// SearchAttributes are relman's search attributes, all Keyword: a cluster
// without them leaves every release STARTED forever.
var SearchAttributes = []string{workflows.SAProject, workflows.SAEnv, workflows.SAStatus, workflows.SARequester, workflows.SAManager}

// Tools are the binaries and files the cluster runs from.
type Tools struct {
	TemporalServer string // go.temporal.io/server/cmd/server
	SQLTool        string // go.temporal.io/server/cmd/tools/sql
	Schema         string // schema/postgresql/v12 of the same server version
	Weed           string // SeaweedFS
}

// FindTools names the tools in dir; an empty dir means
// $RELMAN_CLUSTER_BIN, else bin/ at the root of this module. Start and
// StartS3 report the ones that are missing.
func FindTools(dir string) Tools {
	if dir == "" {
		dir = os.Getenv("RELMAN_CLUSTER_BIN")
	}
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "bin")
	}
	return Tools{
		TemporalServer: filepath.Join(dir, "temporal-server"),
		SQLTool:        filepath.Join(dir, "temporal-sql-tool"),
		Schema:         filepath.Join(dir, "temporal-schema"),
		Weed:           filepath.Join(dir, "weed"),
	}
}

// need reports the paths that do not exist, as one error saying how to get
// them.
func need(paths ...string) error {
	var missing []string
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster tools missing (%v): run `make cluster-tools` or set RELMAN_CLUSTER_BIN", missing)
	}
	return nil
}

// Cluster is a running Temporal cluster on PostgreSQL.
type Cluster struct {
	// Dir holds the service configs and logs/.
	Dir      string
	Postgres *Postgres

	t  *temporal
	mu sync.Mutex
}

// Start starts PostgreSQL, creates and migrates the databases, starts the
// four services, and creates the namespace and relman's search attributes.
// dir must exist; everything the cluster writes goes under it (PostgreSQL's
// data goes to a temp dir of its own, see Postgres). On error whatever was
// started is stopped again.
func Start(ctx context.Context, tools Tools, dir string) (c *Cluster, err error) {
	if err := need(tools.TemporalServer, tools.SQLTool, filepath.Join(tools.Schema, "temporal", "versioned")); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	pg, err := StartPostgres(ctx, filepath.Join(dir, "logs", "postgres.log"))
	if err != nil {
		return nil, err
	}
	c = &Cluster{Dir: dir, Postgres: pg}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	c.t, err = newTemporal(tools.TemporalServer, tools.SQLTool, tools.Schema, dir, pg)
	if err != nil {
		return c, err
	}
	if err := c.t.setupSchema(ctx); err != nil {
		return c, err
	}
	// History first: the others look for it in the membership ring when
	// they start. Starting them one by one keeps two busy cores from timing
	// out the ring's joins.
	for _, name := range Services {
		if err := c.t.start(ctx, name); err != nil {
			return c, err
		}
	}
	if err := c.setupNamespace(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// Address is the frontend's host:port.
func (c *Cluster) Address() string { return c.t.frontendAddress() }

// Ports lists each service's gRPC port.
func (c *Cluster) Ports() map[string]int {
	m := map[string]int{}
	for n, p := range c.t.ports {
		m[n] = p.GRPC
	}
	return m
}

// ArchiveDir is where the cluster archives closed workflows (filestore:
// history/ and visibility/ below it); archival is on for the namespace.
func (c *Cluster) ArchiveDir() string { return c.t.archiveDir() }

// Logs lists the cluster's log files, for dumping when a test fails.
func (c *Cluster) Logs() []string {
	ls, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	return ls
}

// Kill SIGKILLs one service (a crash: no draining, its membership entry left
// behind for the others to time out).
func (c *Cluster) Kill(service string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.t.procs[service]
	if !ok {
		return fmt.Errorf("no Temporal service %q: use one of %v", service, Services)
	}
	p.kill()
	return nil
}

// StartService starts a killed or stopped service again on the same ports
// and waits until it serves.
func (c *Cluster) StartService(ctx context.Context, service string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.start(ctx, service)
}

// Running reports whether a service's process is up.
func (c *Cluster) Running(service string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.t.procs[service]
	return ok && p.running()
}

// Pid is the process id of a running service, 0 when it is not running.
func (c *Cluster) Pid(service string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.t.procs[service]
	if !ok || !p.running() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop stops every service, then PostgreSQL, and removes PostgreSQL's
// files.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.t != nil {
		errs = append(errs, c.t.stopAll())
	}
	if c.Postgres != nil {
		errs = append(errs, c.Postgres.Stop())
	}
	return errors.Join(errs...)
}

// Dial connects a client to the cluster's namespace that logs nothing.
func (c *Cluster) Dial() (client.Client, error) {
	return client.Dial(c.clientOptions())
}

func (c *Cluster) clientOptions() client.Options {
	return client.Options{
		HostPort:  c.Address(),
		Namespace: Namespace,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
}

// setupNamespace does what an operator does once on a new cluster: create
// the namespace and relman's search attributes. Then it waits until a
// workflow can be started in the namespace, which needs every service to
// know it (they refresh their namespace caches on a timer).
func (c *Cluster) setupNamespace(ctx context.Context) error {
	cl, err := c.Dial()
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.Address(), err)
	}
	defer cl.Close()
	svc := cl.WorkflowService()
	_, err = svc.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        Namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}
	sas := map[string]enumspb.IndexedValueType{}
	for _, sa := range SearchAttributes {
		sas[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
	}
	if err := retry(ctx, "add search attributes", func() error {
		_, err := cl.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace:        Namespace,
			SearchAttributes: sas,
		})
		var exists *serviceerror.AlreadyExists
		if errors.As(err, &exists) {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	return retry(ctx, "start a probe workflow", func() error {
		run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:        "testcluster-probe",
			TaskQueue: "testcluster-probe",
			// A second probe after a transient error must not fail on the
			// first one still running.
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING,
		}, "testcluster-probe")
		if err != nil {
			return err
		}
		return cl.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), "probe done")
	})
}

// retry calls f until it succeeds or ctx ends: right after start, a
// service may not yet know the others or the namespace.
func retry(ctx context.Context, what string, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (context: %v)", what, err, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}
