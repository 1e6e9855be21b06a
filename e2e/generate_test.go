package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relman/relman/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestGeneratedLayoutsStartAsTheyAre: `relman generate` layouts run with no
// edit but the Temporal address.
func TestGeneratedLayoutsStartAsTheyAre(t *testing.T) {
	dir := t.TempDir()
	for _, role := range []string{"builder", "installer"} {
		out, err := exec.Command(env.Relman, "generate", role, "gen-"+role, "--dir", dir).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	var procs []*testenv.Proc
	for _, role := range []string{"builder", "installer"} {
		p, err := env.StartRole("gen-"+role, role, filepath.Join(dir, "gen-"+role, "conf", role+".yaml"))
		require.NoError(t, err)
		procs = append(procs, p)
	}
	require.Eventually(t, func() bool {
		out, _, _ := relman(t, "registrations")
		return strings.Contains(out, "gen-builder") && strings.Contains(out, "gen-installer")
	}, 30*time.Second, 200*time.Millisecond)
	for _, p := range procs {
		require.NoError(t, p.Stop(20*time.Second))
	}
}
