package devserver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/temporalclient"
)

func temporalBin(t *testing.T) string {
	t.Helper()
	bin, err := devserver.Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return bin
}

// TestRetentionStated: the dev server's namespace keeps closed workflows
// for the stated retention, not the server's one day, and keeps it when
// the server starts again on the same file (a `relman dev` restart).
func TestRetentionStated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev server")
	}
	bin := temporalBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := devserver.Start(ctx, devserver.Options{Bin: bin, DBFile: filepath.Join(dir, "temporal.db"), LogPath: filepath.Join(dir, "temporal.log")})
	require.NoError(t, err)
	defer srv.Stop(20 * time.Second)
	assert.Equal(t, devserver.Retention, srv.Retention.TTL)
	assert.Equal(t, devserver.Namespace, srv.Retention.Namespace)
	assert.False(t, srv.Retention.HistoryArchival, "the dev server cannot archive")

	// What any client of the server sees, not only what Start remembers.
	c, err := devserver.Dial(srv.Address, "")
	require.NoError(t, err)
	defer c.Close()
	r, err := temporalclient.DescribeRetention(ctx, c, devserver.Namespace)
	require.NoError(t, err)
	assert.Equal(t, devserver.Retention, r.TTL)

	// Someone shortens it; a restart of the stack states it again.
	require.NoError(t, temporalclient.SetRetention(ctx, c, devserver.Namespace, 48*time.Hour))
	require.NoError(t, srv.Stop(20*time.Second))
	require.NoError(t, srv.Start(ctx))
	c2, err := devserver.Dial(srv.Address, "")
	require.NoError(t, err)
	defer c2.Close()
	r, err = temporalclient.DescribeRetention(ctx, c2, devserver.Namespace)
	require.NoError(t, err)
	assert.Equal(t, devserver.Retention, r.TTL)
	assert.Equal(t, devserver.Retention, srv.Retention.TTL)
}

func TestFormatRetention(t *testing.T) {
	for name, tc := range map[string]struct {
		ttl  time.Duration
		want string
	}{
		"whole days": {30 * 24 * time.Hour, "30d"},
		"one day":    {24 * time.Hour, "1d"},
		"hours":      {36 * time.Hour, "36h0m0s"},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, temporalclient.FormatRetention(tc.ttl))
		})
	}
	assert.Equal(t, "temporal operator namespace update --namespace relman --retention 30d",
		temporalclient.RetentionCommand("relman", 30*24*time.Hour))
}
