//go:build cluster

package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/relman/relman/workflows"
)

// TestStoreRefusalFailsAtOnce: a builder, then an installer host, whose
// store refuses them (here: no such bucket; a wrong key goes the same way,
// see artifact) fail the release without a retry, with a reason
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

	// The release's history and those of the registry's shards, which hold
	// the roles' registrations (a shard no role hashed to was never
	// started).
	histories := 0
	ids := []string{txid}
	for k := range workflows.RegistryShards {
		ids = append(ids, workflows.RegistryShardID(env.RegistryID, k))
	}
	for _, id := range ids {
		it := env.Client.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		events := 0
		for it.HasNext() {
			ev, err := it.Next()
			var notFound *serviceerror.NotFound
			if id != txid && events == 0 && errors.As(err, &notFound) {
				break
			}
			require.NoError(t, err, id)
			events++
			b, err := protojson.Marshal(ev)
			require.NoError(t, err)
			require.NotContains(t, string(b), s3.SecretAccessKey, "history of %s, event %d", id, ev.GetEventId())
		}
		if events > 0 {
			histories++
		}
	}
	require.Greater(t, histories, 1, "the release's history and at least one registry shard's")
	logs, err := filepath.Glob(env.Path("logs", "*.log"))
	require.NoError(t, err)
	logs = append(logs, temp.Logs()...)
	logs = append(logs, s3.Log())
	for _, l := range logs {
		b, err := os.ReadFile(l)
		require.NoError(t, err)
		require.NotContains(t, string(b), s3.SecretAccessKey, l)
	}
	t.Logf("secret key in none of %d log files and %d histories", len(logs), histories)
}

// TestStoreDown: with SeaweedFS killed, a build fails at its upload and an
// install of an earlier build fails at its download, each within a few
// retries and with a reason naming the store and the bucket; the hosts
// keep what they had installed before.
func TestStoreDown(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 5*time.Minute)
	// An earlier build to install once the store is down.
	before, err := env.Release(ctx, "", freshRequest(t, "app", "test", "cluster-store-down"))
	require.NoError(t, err)
	d, err := env.Final(ctx, before)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	installed := map[string]string{}
	for _, h := range hosts {
		b, err := os.ReadFile(env.Path(h, "app.txt"))
		require.NoError(t, err)
		installed[h] = string(b)
	}

	s3.Kill()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, s3.Start(ctx))
	}()
	wants := []string{"s3://" + s3.Bucket, "bucket " + s3.Bucket, "unreachable", "connection refused"}

	t.Run("build", func(t *testing.T) {
		start := time.Now()
		req := freshRequest(t, "app", "", "cluster-store-down")
		req.Action = workflows.ActionBuild
		txid, err := env.Release(ctx, "", req)
		require.NoError(t, err)
		d, err := env.Final(ctx, txid)
		require.Error(t, err)
		require.Equal(t, workflows.StatusBuildFailed, d.Status, d.Reason)
		for _, part := range wants {
			assert.Contains(t, d.Reason, part)
		}
		t.Logf("BUILD_FAILED %s after the start: %s", time.Since(start).Round(time.Millisecond), d.Reason)
	})
	t.Run("install", func(t *testing.T) {
		start := time.Now()
		req := install("app", "cluster-store-down")
		req.From = before
		txid, err := env.Release(ctx, "", req)
		require.NoError(t, err)
		d, err := env.Final(ctx, txid)
		require.Error(t, err)
		require.Equal(t, workflows.StatusInstallFailed, d.Status, d.Reason)
		require.Len(t, d.Installs, len(hosts))
		for _, in := range d.Installs {
			for _, part := range wants {
				assert.Contains(t, in.Error, part, in.Host)
			}
		}
		for _, h := range hosts {
			b, err := os.ReadFile(env.Path(h, "app.txt"))
			require.NoError(t, err)
			assert.Equal(t, installed[h], string(b), "%s keeps its install", h)
		}
		t.Logf("INSTALL_FAILED %s after the start, %d attempts on %s: %s", time.Since(start).Round(time.Millisecond), d.Installs[0].Attempts, d.Installs[0].Host, d.Installs[0].Error)
	})
}
