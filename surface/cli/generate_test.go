package cli

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
)

// TestGoldenGenerate: what `relman generate` writes for each role, file by
// file, with the directory it wrote into, the relman binary's path and the
// manager's order key (random) replaced by placeholders. The example
// project's files (a copy of examples/template) are listed, not shown, and
// so are secret keys. Refresh with
// go test ./surface/cli -run TestGoldenGenerate -update.
func TestGoldenGenerate(t *testing.T) {
	dir := t.TempDir()
	relman, err := os.Executable()
	require.NoError(t, err)
	var managerKey string
	for _, role := range []string{"manager", "builder", "installer"} {
		t.Run(role, func(t *testing.T) {
			name := "my-" + role
			var out, errb bytes.Buffer
			code := Execute(context.Background(), []string{"generate", role, name, "--dir", dir}, Options{Stdout: &out, Stderr: &errb})
			require.Equal(t, ExitOK, code, errb.String())
			var b strings.Builder
			fmt.Fprintf(&b, "$ relman generate %s %s --dir <DIR>\n%s", role, name, out.String())
			root := filepath.Join(dir, name)
			require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, p)
				switch {
				case d.IsDir() && d.Name() == ".git":
					return fs.SkipDir
				case rel == ".":
					return nil
				case d.IsDir():
					fmt.Fprintf(&b, "\n== %s/\n", rel)
					return nil
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				// Modes beyond the executable bit depend on the umask.
				mark := ""
				if info.Mode().Perm()&0o100 != 0 {
					mark = " (executable)"
				}
				fmt.Fprintf(&b, "\n== %s%s\n", rel, mark)
				if strings.HasPrefix(rel, exampleCheckout+string(filepath.Separator)) {
					return nil
				}
				if strings.HasSuffix(rel, ".key") {
					fmt.Fprintf(&b, "(a secret key, %d bytes, mode %v)\n", info.Size(), info.Mode().Perm())
					return nil
				}
				body, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				b.Write(body)
				return nil
			}))
			if role == "manager" {
				// The key is random: the golden file has a placeholder,
				// and the installer's config has the key the manager's
				// relman manager-key prints.
				var keyOut, keyErr bytes.Buffer
				code := Execute(context.Background(), []string{"manager-key", "--config", filepath.Join(root, "conf", "manager.yaml")}, Options{Stdout: &keyOut, Stderr: &keyErr})
				require.Equal(t, ExitOK, code, keyErr.String())
				managerKey = strings.TrimSpace(keyOut.String())
				require.NotEmpty(t, managerKey)
			}
			pairs := []string{dir, "<DIR>", relman, "<RELMAN>"}
			if managerKey != "" {
				pairs = append(pairs, managerKey, "<MANAGER_KEY>")
			}
			got := strings.NewReplacer(pairs...).Replace(b.String())
			golden(t, "generate-"+role+".txt", []byte(got))
		})
	}
	// The roles generated into one directory share one artifact store.
	_, err = os.Stat(filepath.Join(dir, sharedStore))
	assert.NoError(t, err)
}

// Generating again keeps every file there and says so.
func TestGenerateKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	run := func() string {
		var out, errb bytes.Buffer
		code := Execute(context.Background(), []string{"generate", "builder", "b1", "--dir", dir}, Options{Stdout: &out, Stderr: &errb})
		require.Equal(t, ExitOK, code, errb.String())
		return out.String()
	}
	run()
	cfg := filepath.Join(dir, "b1", "conf", "builder.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("# mine\n"), 0o644))
	out := run()
	for _, f := range []string{"README.md", "conf/builder.yaml", "relman-builder-b1.service"} {
		assert.Contains(t, out, "kept existing "+f)
	}
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	assert.Equal(t, "# mine\n", string(b))
}

func TestGenerateBadInput(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"unknown role":     {[]string{"generate", "deployer", "x"}, `unknown role "deployer"; generate manager, builder or installer`},
		"bad name":         {[]string{"generate", "builder", "Build 1"}, `name "Build 1" must be lowercase letters`},
		"the store's name": {[]string{"generate", "installer", "artifacts"}, `name "artifacts" is the artifact store the roles of --dir share; choose another name`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(context.Background(), append(tc.args, "--dir", t.TempDir()), Options{Stdout: &out, Stderr: &errb})
			assert.Equal(t, ExitUsage, code)
			assert.Contains(t, errb.String(), tc.want)
		})
	}
}

// TestGenerateInstallerTrustsManagers: a generated layout runs signed
// install orders from the start. Generating a manager makes its order key,
// owner-only, where its config says; an installer generated beside it
// trusts exactly the key relman manager-key prints for each manager there,
// and its config loads and validates. An installer generated with no
// manager beside it says so, and its config is refused until a key is
// added.
func TestGenerateInstallerTrustsManagers(t *testing.T) {
	dir := t.TempDir()
	var keys []string
	for _, m := range []string{"mgr-a", "mgr-b"} {
		stdout, stderr, code := run(t, "generate", "manager", m, "--dir", dir)
		require.Equal(t, ExitOK, code, stderr)
		st, err := os.Stat(filepath.Join(dir, m, "work", "orders.key"))
		require.NoError(t, err, "generate makes the manager's order key")
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the order key is owner-only")
		key, stderr, code := run(t, "manager-key", "--config", filepath.Join(dir, m, "conf", "manager.yaml"))
		require.Equal(t, ExitOK, code, stderr)
		key = strings.TrimSpace(key)
		assert.Contains(t, stdout, "installers trust its public key "+key)
		keys = append(keys, key)
	}
	stdout, stderr, code := run(t, "generate", "installer", "host-1", "--dir", dir)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stdout, "trusts the install orders of manager mgr-a")
	assert.Contains(t, stdout, "trusts the install orders of manager mgr-b")
	conf := filepath.Join(dir, "host-1", "conf", "installer.yaml")
	cfg, err := config.LoadInstaller(conf)
	require.NoError(t, err, "the generated installer config validates")
	assert.Equal(t, keys, cfg.Trust.ManagerKeys, "the installer trusts the keys relman manager-key prints")
	assert.Empty(t, cfg.Trust.ManagerKeyFiles)
	readme, err := os.ReadFile(filepath.Join(dir, "host-1", "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "manager mgr-a, manager mgr-b (generated beside it)")
	mreadme, err := os.ReadFile(filepath.Join(dir, "mgr-a", "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(mreadme), "stays on this machine")

	// No manager beside it: no key to trust, and relman says what to do.
	alone := t.TempDir()
	stdout, stderr, code = run(t, "generate", "installer", "host-2", "--dir", alone)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stdout, "trusts no manager yet: no manager generated in "+alone+" has an order key")
	assert.Contains(t, stdout, "relman manager-key --config manager.yaml")
	_, stderr, code = run(t, "config", "check", filepath.Join(alone, "host-2", "conf", "installer.yaml"))
	assert.NotEqual(t, ExitOK, code, "an installer that trusts no manager key is refused")
	assert.Contains(t, stderr, "relman manager-key")

	// A manager without a key (an older layout never started): the
	// installer does not trust it, says why, and writes nothing into the
	// manager's layout.
	old := t.TempDir()
	_, stderr, code = run(t, "generate", "manager", "mgr-old", "--dir", old)
	require.Equal(t, ExitOK, code, stderr)
	require.NoError(t, os.Remove(filepath.Join(old, "mgr-old", "work", "orders.key")))
	stdout, stderr, code = run(t, "generate", "installer", "host-3", "--dir", old)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stderr, "not trusting manager mgr-old: it has no order key yet")
	assert.Contains(t, stdout, "trusts no manager yet")
	assert.NoFileExists(t, filepath.Join(old, "mgr-old", "work", "orders.key"))
}
