//go:build cluster

package cluster

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/relman/relman/workflows"
)

// TestStoreRefusalFailsAtOnce: a builder, then an installer host, whose
// store refuses them (here: no such bucket; a wrong key goes the same way,
// see internal/artifact) fail the release without a retry, with a reason
// that names the store, the bucket and what was refused, and nothing is
// installed.
func TestStoreRefusalFailsAtOnce(t *testing.T) {
	t.Run("build", func(t *testing.T) {
		env.DumpOnFailure(t)
		ctx := timeout(t, 3*time.Minute)
		// A build-only release: no host is needed to get to the upload.
		req := freshRequest(t, "refused", "", "cluster-refused")
		req.Action = workflows.ActionBuild
		txid, err := env.Release(ctx, "", req)
		require.NoError(t, err)
		d, err := env.Final(ctx, txid)
		require.Error(t, err)
		require.Equal(t, workflows.StatusBuildFailed, d.Status, d.Reason)
		for _, part := range []string{"s3://" + missingBucket, "bucket " + missingBucket, "NoSuchBucket", "refused to write"} {
			assert.Contains(t, d.Reason, part)
		}
		assert.Len(t, builds(t, txid), 1, "the build ran once: a refusal is not retried")
		t.Logf("reason: %s", d.Reason)
	})
	t.Run("install", func(t *testing.T) {
		env.DumpOnFailure(t)
		ctx := timeout(t, 3*time.Minute)
		req := install("app", "cluster-refused")
		req.Env = "refusing"
		txid, err := env.Release(ctx, "", req)
		require.NoError(t, err)
		d, err := env.Final(ctx, txid)
		require.Error(t, err)
		require.Equal(t, workflows.StatusInstallFailed, d.Status, d.Reason)
		require.Len(t, d.Installs, 1)
		in := d.Installs[0]
		assert.Equal(t, "host-nobucket", in.Host)
		assert.EqualValues(t, 1, in.Attempts, "a refusal is not retried")
		for _, part := range []string{"s3://" + missingBucket, "bucket " + missingBucket, "NoSuchBucket", "refused to read"} {
			assert.Contains(t, in.Error, part)
		}
		_, err = os.Stat(env.Path("host-nobucket", "app.txt"))
		assert.True(t, os.IsNotExist(err), "nothing installed on host-nobucket")
		t.Logf("install error: %s", in.Error)
	})
}

// TestSecretsStayOut: the store's secret key, which every role has in its
// environment, shows up in no workflow history (the release's and the
// registry's) and in no log of the roles, Temporal or SeaweedFS.
func TestSecretsStayOut(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 3*time.Minute)
	txid, err := env.Release(ctx, "", freshRequest(t, "app", "test", "cluster-secrets"))
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)

	for _, id := range []string{txid, env.RegistryID} {
		it := env.Client.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		events := 0
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			events++
			b, err := protojson.Marshal(ev)
			require.NoError(t, err)
			require.NotContains(t, string(b), s3.SecretAccessKey, "history of %s, event %d", id, ev.GetEventId())
		}
		require.NotZero(t, events, id)
	}
	logs, err := filepath.Glob(env.Path("logs", "*.log"))
	require.NoError(t, err)
	logs = append(logs, temp.Logs()...)
	logs = append(logs, s3.Log())
	for _, l := range logs {
		b, err := os.ReadFile(l)
		require.NoError(t, err)
		require.NotContains(t, string(b), s3.SecretAccessKey, l)
	}
	t.Logf("secret key in none of %d log files and 2 histories", len(logs))
}
