package devstack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

// The installer configs a dev stack writes trust the key its manager
// writes beside its orders key, so they work when restarted by hand; a
// stack's installer config from before signed orders gets that trust
// added, its own lines kept.
func TestDevInstallersTrustTheDevManager(t *testing.T) {
	dir := t.TempDir()
	old := "version: 1\nhost: host-b\n# mine\nenvironments:\n  test: {template: {behavior: unarchive, path: ./www}}"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "installer-b.yaml"), []byte(old), 0o644))
	require.NoError(t, writeExamples(dir))

	m, err := config.LoadManager(filepath.Join(dir, "manager.yaml"))
	require.NoError(t, err)
	want := []string{auth.OrderPublicKeyFile(m.OrdersKeyFile)}
	for _, name := range []string{"installer-a.yaml", "installer-b.yaml"} {
		in, err := config.LoadInstaller(filepath.Join(dir, name))
		require.NoError(t, err, name)
		assert.Equal(t, want, in.Trust.ManagerKeyFiles, name)
	}
	b, err := os.ReadFile(filepath.Join(dir, "installer-b.yaml"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), old+"\n"), "the old config's lines stay: %s", b)

	// Once there, nothing is added again, and other configs stay as they are.
	require.NoError(t, writeExamples(dir))
	again, err := os.ReadFile(filepath.Join(dir, "installer-b.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(b), string(again))
	mb, err := os.ReadFile(filepath.Join(dir, "manager.yaml"))
	require.NoError(t, err)
	assert.NotContains(t, string(mb), "Added by relman dev")
}
