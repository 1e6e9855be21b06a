package workflows_test

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/workflows"
)

// A release of a manager on a queue of its own sends its build and its
// installs to queues of that manager, so another manager's builders and
// hosts never take them; one started before the queues were scoped keeps
// the names it began with.
func TestReleaseQueuesOfItsManager(t *testing.T) {
	tests := map[string]struct {
		queue   string
		version workflow.Version // what the scoped-queues gate answers; -2: not mocked
		build   string
		hosts   []string
	}{
		"default manager": {
			queue: workflows.DefaultManagerQueue, version: -2,
			build: "relman-build-template",
			hosts: []string{"relman-host-host-a", "relman-host-host-b", "relman-host-host-c"},
		},
		"another manager": {
			queue: "team-b", version: -2,
			build: "team-b:relman-build-template",
			hosts: []string{"team-b:relman-host-host-a", "team-b:relman-host-host-b", "team-b:relman-host-host-c"},
		},
		"another manager's release from before": {
			queue: "team-b", version: workflow.DefaultVersion,
			build: "relman-build-template",
			hosts: []string{"relman-host-host-a", "relman-host-host-b", "relman-host-host-c"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newStand(farmPlan())
			env := newReleaseEnv(t, s)
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testTX, TaskQueue: tc.queue})
			if tc.version != -2 {
				// A release from before the baseline reads the change's own marker.
				env.OnGetVersion("baseline-2026-11", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
				env.OnGetVersion("manager-scoped-queues", workflow.DefaultVersion, 1).Return(tc.version)
			}
			env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			builds := s.buildCalls()
			require.Len(t, builds, 1)
			assert.Equal(t, tc.build, builds[0].Info.TaskQueue)
			queues := map[string]bool{}
			for _, c := range s.installCalls() {
				queues[c.Info.TaskQueue] = true
			}
			var got []string
			for q := range queues {
				got = append(got, q)
			}
			sort.Strings(got)
			assert.Equal(t, tc.hosts, got)
		})
	}
}
