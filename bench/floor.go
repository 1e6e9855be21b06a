package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// The floor of rows 1 and 5: a bare Temporal workflow of the release's
// shape (one no-op activity on a build queue, then one on each of the host
// queues, in parallel), with no planning, no registry, no search attributes
// and no real work.
const (
	floorWorkflowName = "BenchFloor"
	floorActivityName = "BenchNoop"
	floorWFQueue      = "bench-floor-manager"
	floorBuildQueue   = "bench-floor-build"
)

func floorHostQueue(i int) string { return "bench-floor-host-" + strconv.Itoa(i) }

func floorWorkflow(ctx workflow.Context, hosts int) error {
	opts := workflow.ActivityOptions{TaskQueue: floorBuildQueue, StartToCloseTimeout: time.Minute}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), floorActivityName).Get(ctx, nil); err != nil {
		return err
	}
	return floorHosts(ctx, 0, hosts)
}

// floorHosts runs the no-op activity on each of hosts [from, to) at once
// and waits for them all: the floors' install step (rows 1 and 7).
func floorHosts(ctx workflow.Context, from, to int) error {
	opts := workflow.ActivityOptions{StartToCloseTimeout: time.Minute}
	var fs []workflow.Future
	for i := from; i < to; i++ {
		opts.TaskQueue = floorHostQueue(i)
		fs = append(fs, workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), floorActivityName))
	}
	for _, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func floorNoop(context.Context) error { return nil }

// startFloor runs the floor's workers the way relman's roles run: one
// "manager" worker for the workflow, one "builder" worker and one worker
// per host, each with its own client, all in this process.
func startFloor(s *server, hosts int) ([]*inproc, error) {
	var rs []*inproc
	add := func(name, queue string, reg func(worker.Worker)) error {
		r, err := s.runFloorWorker(name, queue, nil, worker.Options{}, reg)
		if err != nil {
			return err
		}
		rs = append(rs, r)
		return nil
	}
	act := func(w worker.Worker) {
		w.RegisterActivityWithOptions(floorNoop, activity.RegisterOptions{Name: floorActivityName})
	}
	if err := add("floor-manager", floorWFQueue, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(floorWorkflow, workflow.RegisterOptions{Name: floorWorkflowName})
	}); err != nil {
		return rs, err
	}
	if err := add("floor-builder", floorBuildQueue, act); err != nil {
		return rs, err
	}
	for i := range hosts {
		if err := add(fmt.Sprintf("floor-host-%d", i), floorHostQueue(i), act); err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// runFloorWorker runs one bare worker on queue as a role named name, with
// the client c (nil: a client of its own) and opts, registered by reg,
// until the role is stopped. The floors of rows 1 and 7 run all their
// workers this way.
func (s *server) runFloorWorker(name, queue string, c client.Client, opts worker.Options, reg func(worker.Worker)) (*inproc, error) {
	return s.runRole(name, c, func(ctx context.Context, c client.Client, _ *slog.Logger) error {
		opts.WorkerStopTimeout = 10 * time.Second
		w := worker.New(c, queue, opts)
		reg(w)
		if err := w.Start(); err != nil {
			return err
		}
		<-ctx.Done()
		w.Stop()
		return nil
	})
}

// floorRun runs one bare workflow from start request to completion.
func (s *server) floorRun(ctx context.Context, hosts int) (time.Duration, string, error) {
	return s.timeWorkflow(ctx, 5*time.Minute, floorWorkflowName, hosts)
}

// timeWorkflow runs workflow with arg on the floor's queue, within limit,
// and says how long it took from start request to completion.
func (s *server) timeWorkflow(ctx context.Context, limit time.Duration, workflow string, arg any) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t0 := time.Now()
	run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: floorWFQueue}, workflow, arg)
	if err != nil {
		return 0, "", err
	}
	err = run.Get(ctx, nil)
	return time.Since(t0), run.GetID(), err
}

// shellFloor is row 2's floor: the artifact path as a sequential shell
// pipeline of standard tools on the same data. It copies the data into a
// build dir (the same cp the relman build step runs), tars and gzips it, and
// for each host hashes the archive and unpacks it.
func shellFloor(ctx context.Context, data, work string, hosts int, gzip1 bool) (time.Duration, error) {
	if err := os.RemoveAll(work); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	script := `set -e
cd "$W"
cp -r "$DATA" out && echo floor > out/TXID
if [ "$GZIP1" = 1 ]; then tar cf - -C out . | gzip -1 > pkg.tar.gz; else tar czf pkg.tar.gz -C out .; fi
i=0
while [ $i -lt "$HOSTS" ]; do
  sha256sum pkg.tar.gz > /dev/null
  mkdir -p host-$i
  tar xzf pkg.tar.gz -C host-$i
  i=$((i+1))
done
`
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = append(os.Environ(), "W="+work, "DATA="+data, "HOSTS="+strconv.Itoa(hosts), "LC_ALL=C", "GZIP1="+map[bool]string{true: "1", false: "0"}[gzip1])
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		return el, fmt.Errorf("shell floor: %v: %s", err, out)
	}
	return el, nil
}

// dropPages flushes dirty pages so one run's writeback does not land in the
// next run's timing.
func dropPages() {
	_ = exec.Command("sync").Run()
}

func removeInstalls(root string, hosts []string, env string) {
	for _, h := range hosts {
		_ = os.RemoveAll(filepath.Join(root, "hosts", h, env))
	}
}
