package secretfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/secretfile"
)

func TestLoadOrCreateMakesAnOwnerOnlyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "conf", "gateway.secret")
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	a, err := secretfile.LoadOrCreate(p, 32, warn)
	require.NoError(t, err)
	require.Len(t, a, 32)
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := secretfile.LoadOrCreate(p, 32, warn)
	require.NoError(t, err)
	assert.Equal(t, a, b, "the second load reads the first secret")
	assert.Empty(t, warned)
}

func TestReadWarnsAboutAFileOthersCanRead(t *testing.T) {
	for name, tc := range map[string]struct {
		mode os.FileMode
		warn bool
	}{
		"owner only":      {0o600, false},
		"owner read only": {0o400, false},
		"group readable":  {0o640, true},
		"world readable":  {0o644, true},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(p, []byte("s3cret"), tc.mode))
			require.NoError(t, os.Chmod(p, tc.mode))
			var warned []string
			b, err := secretfile.Read(p, func(s string) { warned = append(warned, s) })
			require.NoError(t, err)
			assert.Equal(t, "s3cret", string(b))
			if !tc.warn {
				assert.Empty(t, warned)
				return
			}
			require.Len(t, warned, 1)
			assert.Contains(t, warned[0], p)
			assert.Contains(t, warned[0], "chmod 600 "+p)
			assert.NotContains(t, warned[0], "s3cret", "the warning never quotes the secret")
		})
	}
}

func TestShortSecretIsRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gateway.secret")
	require.NoError(t, os.WriteFile(p, []byte("short"), 0o600))
	_, err := secretfile.LoadOrCreate(p, 32, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fewer than 32 bytes")
}

func TestWriteAndProtect(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "users.yaml")
	require.NoError(t, secretfile.Write(p, []byte("x")))
	st, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	out := filepath.Join(dir, "payload.keys")
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	require.NoError(t, secretfile.Protect(f))
	require.NoError(t, f.Close())
	st, err = os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "stdout redirected to a file ends owner-only")
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	loose := filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(loose, []byte("k"), 0o644))
	require.NoError(t, os.Chmod(loose, 0o644))
	tight := filepath.Join(dir, "users.yaml")
	require.NoError(t, os.WriteFile(tight, []byte("u"), 0o600))
	var warned []string
	warn := func(s string) { warned = append(warned, s) }
	secretfile.Check(loose, warn)
	secretfile.Check(tight, warn)
	secretfile.Check(filepath.Join(dir, "missing"), warn)
	secretfile.Check("", warn)
	require.Len(t, warned, 1)
	assert.Contains(t, warned[0], "chmod 600 "+loose)
}
