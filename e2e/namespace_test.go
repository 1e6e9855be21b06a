package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/relman/relman/surface/cli"
)

// On a namespace without relman's search attributes no transaction could
// leave STARTED: the manager refuses to start and relman release refuses to
// submit, each naming the commands that create them.
func TestNamespaceWithoutSearchAttributes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := env.Client.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "bare", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	require.NoError(t, err)
	want := "temporal operator search-attribute create --namespace bare --name RelmanProject --type Keyword"

	var stderr string
	var code int
	require.Eventually(t, func() bool { // a new namespace takes a moment to be known everywhere
		_, stderr, code = relman(t, "release", "shop", "--env", "test", "--namespace", "bare")
		return code == cli.ExitError && strings.Contains(stderr, want)
	}, time.Minute, 500*time.Millisecond, "release on a bare namespace: exit %d, %s", code, stderr)
	assert.Contains(t, stderr, "RelmanStatus")

	dir := t.TempDir()
	cfg := filepath.Join(dir, "manager.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("version: 1\ntemporal: {namespace: bare}\nmanager_queue: bare-manager\ngateway: {off: true}\nauth: {anonymous: true}\nenvironments: {test: {}}\nprojects: {shop: {targets: [web]}}\n"), 0o644))
	p, err := env.StartRole("bare-manager", "manager", cfg)
	require.NoError(t, err)
	require.Error(t, p.Wait(time.Minute), "the manager must refuse to start")
	assert.Contains(t, p.Tail(4000), want)
}
