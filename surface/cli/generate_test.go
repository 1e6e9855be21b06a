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
)

// TestGoldenGenerate: what `relman generate` writes for each role, file by
// file, with the directory it wrote into and the relman binary's path
// replaced by placeholders. The example project's files (a copy of
// examples/template) are listed, not shown. Refresh with
// go test ./surface/cli -run TestGoldenGenerate -update.
func TestGoldenGenerate(t *testing.T) {
	dir := t.TempDir()
	relman, err := os.Executable()
	require.NoError(t, err)
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
				body, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				b.Write(body)
				return nil
			}))
			got := strings.NewReplacer(dir, "<DIR>", relman, "<RELMAN>").Replace(b.String())
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
