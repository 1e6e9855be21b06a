package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vbauerster/mpb/v8"

	"github.com/relman/relman/workflows"
)

// spinnerFrames are mpb's default spinner's frames: none may be left on a
// line whose step ended.
const spinnerFrames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

var fullBar = regexp.MustCompile(`\[=+\]`)

// TestBarsShowHowEachStepEnded feeds the live view the details a release
// goes through and reads the last picture it draws: every line says what
// became of its step, and a step that did not finish never reads "done".
func TestBarsShowHowEachStepEnded(t *testing.T) {
	req := workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}
	built := map[string]workflows.ArtifactRef{"web": {SHA256: "ab"}}
	install := func(host string, s workflows.InstallState) workflows.InstallRecord {
		return workflows.InstallRecord{Host: host, Target: "web", State: s}
	}
	tests := map[string]struct {
		details []workflows.Detail
		want    []string // the last picture, line by line, spaces collapsed
	}{
		"build failed": {
			details: []workflows.Detail{
				{Request: req, Status: workflows.StatusStarted},
				{Request: req, Status: workflows.StatusBuildFailed},
			},
			want: []string{"build failed"},
		},
		"rejected": {
			details: []workflows.Detail{{Request: req, Status: workflows.StatusRejected}},
			want:    []string{"build rejected"},
		},
		"cancelled while building": {
			details: []workflows.Detail{
				{Request: req, Status: workflows.StatusStarted},
				{Request: req, Status: workflows.StatusCancelled},
			},
			want: []string{"build cancelled"},
		},
		"installed": {
			details: []workflows.Detail{
				{Request: req, Status: workflows.StatusStarted},
				{Request: req, Status: workflows.StatusBuildCompleted, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallInstalling), install("host-b", workflows.InstallPending)}},
				{Request: req, Status: workflows.StatusInstallCompleted, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallInstalled), install("host-b", workflows.InstallInstalled)}},
			},
			want: []string{"build done", "host-a web installed", "host-b web installed"},
		},
		"one host failed": {
			details: []workflows.Detail{
				{Request: req, Status: workflows.StatusBuildCompleted, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallInstalling), install("host-b", workflows.InstallInstalling)}},
				{Request: req, Status: workflows.StatusInstallFailed, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallFailedS), install("host-b", workflows.InstallInstalled)}},
			},
			want: []string{"build done", "host-a web failed", "host-b web installed"},
		},
		"cancelled while installing": {
			details: []workflows.Detail{
				{Request: req, Status: workflows.StatusBuildCompleted, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallInstalling)}},
				{Request: req, Status: workflows.StatusCancelled, Artifacts: built, Installs: []workflows.InstallRecord{install("host-a", workflows.InstallInstalling)}},
			},
			want: []string{"build done", "host-a web cancelled"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			refresh := make(chan any)
			b := newBars(context.Background(), &out, mpb.WithManualRefresh(refresh))
			for i := range tc.details {
				b.show(&tc.details[i])
				refresh <- struct{}{}
			}
			b.close()
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			require.GreaterOrEqual(t, len(lines), len(tc.want), out.String())
			last := lines[len(lines)-len(tc.want):]
			for i := range last {
				// A finished install keeps its full bar; any other ended
				// step shows none.
				last[i] = fullBar.ReplaceAllString(last[i], "")
				assert.NotContains(t, last[i], "[", "a step that did not finish shows no bar: %q", last[i])
				assert.False(t, strings.ContainsAny(last[i], spinnerFrames), "an ended step shows no spinner frame: %q", last[i])
				last[i] = strings.Join(strings.Fields(last[i]), " ")
			}
			assert.Equal(t, tc.want, last)
		})
	}
}
