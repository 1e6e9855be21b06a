package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/archive"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, Options{Stdout: &out, Stderr: &errb})
	return out.String(), errb.String(), code
}

func gitRepo(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o755))
	}
	var head string
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "x"}, {"rev-parse", "HEAD"}} {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t.invalid"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		head = strings.TrimSpace(string(out))
	}
	return head
}

func TestBuildLocalWritesResourcesAndIndex(t *testing.T) {
	root := t.TempDir()
	head := gitRepo(t, filepath.Join(root, "repo"), map[string]string{
		"build.sh":  "mkdir -p dist/sub && echo hi > dist/index.html && echo deep > dist/sub/x && echo tool > tool.bin\n",
		"README.md": "x\n",
	})
	cfg := filepath.Join(root, "builder.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`version: 1
name: local-1
projects:
  demo:
    source: {git: ./repo}
    steps: [{name: build, run: [sh, build.sh]}]
    outputs: {site: {path: dist}, tool: {path: tool.bin}}
`), 0o644))
	out := filepath.Join(root, "out")
	stdout, stderr, code := run(t, "build", "--local", "demo", "--config", cfg, "--out", out)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stdout, head)

	var idx LocalIndex
	b, err := os.ReadFile(filepath.Join(out, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &idx))
	assert.Equal(t, head, idx.Commit)
	require.Len(t, idx.Targets, 2)
	for name, r := range idx.Targets {
		data, err := os.ReadFile(filepath.Join(out, r.File))
		require.NoError(t, err, name)
		sum := sha256.Sum256(data)
		assert.Equal(t, hex.EncodeToString(sum[:]), r.SHA256, name)
		assert.EqualValues(t, len(data), r.Size)
	}
	assert.Equal(t, "tar.gz", idx.Targets["site"].Format)
	assert.Equal(t, "file", idx.Targets["tool"].Format)
	x := filepath.Join(root, "x")
	require.NoError(t, os.Mkdir(x, 0o755))
	require.NoError(t, archive.Extract(context.Background(), filepath.Join(out, idx.Targets["site"].File), x, archive.Limits{}))
	got, err := os.ReadFile(filepath.Join(x, "sub", "x"))
	require.NoError(t, err)
	assert.Equal(t, "deep\n", string(got))
	_, err = os.Stat(filepath.Join(out, ".objects"))
	assert.True(t, os.IsNotExist(err), "the scratch store is removed")

	_, stderr, code = run(t, "build", "--local", "nosuch", "--config", cfg)
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr, `no project "nosuch"`)
	_, stderr, code = run(t, "build", "demo", "--config", cfg)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "--local")
}

func TestGenerateLayoutsNeverOverwrite(t *testing.T) {
	dir := t.TempDir()
	for _, role := range []string{"manager", "builder", "installer"} {
		_, stderr, code := run(t, "generate", role, role+"-1", "--dir", dir)
		require.Equal(t, ExitOK, code, stderr)
		root := filepath.Join(dir, role+"-1")
		for _, d := range layouts[role] {
			assert.DirExists(t, filepath.Join(root, d))
		}
		assert.FileExists(t, filepath.Join(root, "README.md"))
		assert.FileExists(t, filepath.Join(root, "relman-"+role+"-"+role+"-1.service"))
		conf := filepath.Join(root, "conf", role+".yaml")
		st, err := os.Stat(conf)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a config is where secrets go: owner only")
		stdout, stderr, code := run(t, "config", "check", conf)
		require.Equal(t, ExitOK, code, stderr)
		assert.Contains(t, stdout, "ok ("+role+")")
	}
	// An edited file survives a second generate.
	conf := filepath.Join(dir, "builder-1", "conf", "builder.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("# mine\n"), 0o644))
	stdout, _, code := run(t, "generate", "builder", "builder-1", "--dir", dir)
	require.Equal(t, ExitOK, code)
	assert.Contains(t, stdout, "kept existing conf/builder.yaml")
	b, _ := os.ReadFile(conf)
	assert.Equal(t, "# mine\n", string(b))

	_, stderr, code := run(t, "generate", "watcher", "w")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "unknown role")
	_, _, code = run(t, "generate", "builder", "../escape", "--dir", dir)
	assert.Equal(t, ExitUsage, code)
}

// TestSecretOutputIsOwnerOnly: a key or token printed into a file leaves a
// file only its owner can read, whatever the umask; a token file others
// can read is used, with a warning naming the chmod.
func TestSecretOutputIsOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.yaml")
	for name, args := range map[string][]string{
		"payload.keys": {"codec-key", "k1"},
		"bob.token":    {"token", "create", "bob", "--users-file", users, "--roles", "deployer"},
	} {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		require.NoError(t, err)
		var errb bytes.Buffer
		code := Execute(context.Background(), args, Options{Stdout: f, Stderr: &errb})
		require.NoError(t, f.Close())
		require.Equal(t, ExitOK, code, errb.String())
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), name)
	}
	st, err := os.Stat(users)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the users file")

	token := filepath.Join(dir, "bob.token")
	require.NoError(t, os.Chmod(token, 0o644))
	_, stderr, _ := run(t, "approve", "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10", "--token-file", token, "--address", "127.0.0.1:1")
	assert.Contains(t, stderr, "chmod 600 "+token)
}

// TestCodecServerRefusesToStartWithoutToken: a codec server nobody must
// authenticate to decodes anything for anyone, so there is none.
func TestCodecServerRefusesToStartWithoutToken(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "payload.keys")
	f, err := os.Create(keys)
	require.NoError(t, err)
	code := Execute(context.Background(), []string{"codec-key", "k1"}, Options{Stdout: f, Stderr: io.Discard})
	require.NoError(t, f.Close())
	require.Equal(t, ExitOK, code)
	_, stderr, code := run(t, "codec-server", "--encryption-key-file", keys)
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "needs --token-file")
	_, stderr, code = run(t, "codec-server", "--encryption-key-file", keys, "--token-file", filepath.Join(dir, "none"))
	assert.Equal(t, ExitError, code)
	assert.Contains(t, stderr, "codec token file")
}
