package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
)

// The floor of row 7: the release's shape at fleet scale written as a
// Temporal expert would, with nothing of relman's: one no-op activity on
// the build queue, then one no-op activity on each of N host queues. Up to
// fleetFloorChunk hosts the workflow schedules them itself; past that it
// starts one child workflow per chunk of fleetFloorChunk hosts, all at
// once. A chunk keeps Temporal's limits with room to spare: 1,000 pending
// activities of the 2,000 a workflow may hold, and about 3,000 history
// events (scheduled, started, completed per host, and the workflow tasks)
// against the 10,240 the server warns at and the 51,200 it allows; its
// payloads are a few bytes each, far from 50 MB.
const (
	fleetFloorWorkflowName = "BenchFleetFloor"
	fleetFloorChunkName    = "BenchFleetFloorChunk"
	// fleetFloorHostsPerClient hosts share one client, as the fleet's
	// relman hosts do (testenv.StartFleet).
	fleetFloorHostsPerClient = 100
)

// fleetFloorChunk is a variable only so that tests can make it small.
var fleetFloorChunk = 1000

func fleetFloorWorkflow(ctx workflow.Context, hosts int) error {
	opts := workflow.ActivityOptions{TaskQueue: floorBuildQueue, StartToCloseTimeout: time.Minute}
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), floorActivityName).Get(ctx, nil); err != nil {
		return err
	}
	if hosts <= fleetFloorChunk {
		return floorHosts(ctx, 0, hosts)
	}
	var fs []workflow.Future
	for from := 0; from < hosts; from += fleetFloorChunk {
		fs = append(fs, workflow.ExecuteChildWorkflow(ctx, fleetFloorChunkName, from, min(from+fleetFloorChunk, hosts)))
	}
	for _, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// fleetFloorChunkWorkflow is one chunk: hosts [from, to).
func fleetFloorChunkWorkflow(ctx workflow.Context, from, to int) error {
	return floorHosts(ctx, from, to)
}

// fleetFloor is row 7's floor workers: the workflow worker and the build
// worker with a client each (as startFloor runs them), and hosts workers,
// one long poll each (no workflow worker, one activity poller, as relman's
// installers poll), fleetFloorHostsPerClient to a client.
type fleetFloor struct {
	roles   []*inproc
	clients []client.Client
}

func (f *fleetFloor) stop() {
	stopAll(f.roles)
	for _, c := range f.clients {
		c.Close()
	}
	f.roles, f.clients = nil, nil
}

func startFleetFloor(s *server, hosts int) (*fleetFloor, error) {
	f := &fleetFloor{}
	add := func(name, queue string, c client.Client, opts worker.Options, reg func(worker.Worker)) error {
		r, err := s.runFloorWorker(name, queue, c, opts, reg)
		if err != nil {
			return err
		}
		f.roles = append(f.roles, r)
		return nil
	}
	act := func(w worker.Worker) {
		w.RegisterActivityWithOptions(floorNoop, activity.RegisterOptions{Name: floorActivityName})
	}
	if err := add("fleet-floor-manager", floorWFQueue, nil, worker.Options{}, func(w worker.Worker) {
		w.RegisterWorkflowWithOptions(fleetFloorWorkflow, workflow.RegisterOptions{Name: fleetFloorWorkflowName})
		w.RegisterWorkflowWithOptions(fleetFloorChunkWorkflow, workflow.RegisterOptions{Name: fleetFloorChunkName})
	}); err != nil {
		return f, err
	}
	if err := add("fleet-floor-builder", floorBuildQueue, nil, worker.Options{}, act); err != nil {
		return f, err
	}
	var c client.Client
	for i := range hosts {
		if i%fleetFloorHostsPerClient == 0 {
			var err error
			c, err = temporalclient.Dial(config.Temporal{Address: s.addr, Namespace: "default"}, quietLogger(),
				temporalclient.Identity(fmt.Sprintf("fleet-floor-%d", i/fleetFloorHostsPerClient)))
			if err != nil {
				return f, err
			}
			f.clients = append(f.clients, c)
		}
		opts := worker.Options{MaxConcurrentActivityTaskPollers: 1, DisableWorkflowWorker: true}
		if err := add(fmt.Sprintf("fleet-floor-host-%d", i), floorHostQueue(i), c, opts, act); err != nil {
			return f, err
		}
	}
	return f, nil
}

// fleetFloorRun runs row 7's floor to hosts from start request to
// completion.
func (s *server) fleetFloorRun(ctx context.Context, hosts int) (time.Duration, string, error) {
	return s.timeWorkflow(ctx, 10*time.Minute, fleetFloorWorkflowName, hosts)
}

// fleetFloorShape says how the floor reaches n hosts.
func fleetFloorShape(n int) string {
	if n <= fleetFloorChunk {
		return fmt.Sprintf("%d activities from one workflow", n)
	}
	return fmt.Sprintf("%d child workflows of up to %d activities", (n+fleetFloorChunk-1)/fleetFloorChunk, fleetFloorChunk)
}
