package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/auth"
)

func TestManagerKey(t *testing.T) {
	dir := t.TempDir()
	_, errOut, code := run(t, "generate", "manager", "m1", "--dir", dir)
	require.Equal(t, ExitOK, code, errOut)
	cfg := filepath.Join(dir, "m1", "conf", "manager.yaml")

	out1, errOut, code := run(t, "manager-key", "--config", cfg)
	require.Equal(t, ExitOK, code, errOut)
	_, err := auth.ParseManagerKey(out1)
	require.NoError(t, err, "prints a key installers can trust")
	st, err := os.Stat(filepath.Join(dir, "m1", "work", "orders.key"))
	require.NoError(t, err, "the key is where the generated config's orders_key_file says (work/: the unit may write orders.key.pub there)")
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	out2, _, code := run(t, "manager-key", "--config", cfg)
	require.Equal(t, ExitOK, code)
	assert.Equal(t, strings.TrimSpace(out1), strings.TrimSpace(out2), "the same key on every call")

	_, _, code = run(t, "manager-key")
	assert.NotEqual(t, ExitOK, code)
}
