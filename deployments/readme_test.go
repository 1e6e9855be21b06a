package deployments_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/deployments"
	"github.com/relman/relman/workflows"
)

// TestEveryFileIsChecked: each file under deployments/ is exercised by a
// test here; a file added without one fails until it is listed with the
// test that checks it.
func TestEveryFileIsChecked(t *testing.T) {
	checkedBy := map[string]string{
		"README.md":                                       "TestOperationsGuide",
		"embed.go":                                        "TestPackagedUnits",
		"systemd.go":                                      "TestPackagedUnits, TestSystemdUnitRefusesWhatSystemdWouldMisread, TestProtectHomeFollowsTheLayout",
		"systemd/relman.service.tmpl":                     "TestPackagedUnits, TestSystemdAnalyzeVerify",
		"systemd/relman-manager.service":                  "TestSystemdAnalyzeVerify, TestUnitsAreHardened, TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/relman-builder.service":                  "TestSystemdAnalyzeVerify, TestUnitsAreHardened, TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/relman-installer.service":                "TestSystemdAnalyzeVerify, TestUnitsAreHardened, TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/relman-codec-server.service":             "TestSystemdAnalyzeVerify, TestUnitsAreHardened",
		"systemd/manager.yaml":                            "TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/builder.yaml":                            "TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/installer.yaml":                          "TestUnitsWriteWhatTheirConfigsNeed",
		"systemd/relman.env":                              "TestEnvironmentFileNamesRealSettings",
		"systemd/relman.sysusers":                         "TestSystemdAnalyzeVerify (systemd-sysusers)",
		"systemd/relman.tmpfiles":                         "TestTmpfilesMakeThePackagedDirectories (systemd-tmpfiles)",
		"docker/Dockerfile":                               "TestDockerfileBuildsWhatMakeBuilds, TestDockerfileImages",
		"docker/Dockerfile.dockerignore":                  "TestDockerignoreKeepsWhatTheBuildNeeds",
		"helm/relman/Chart.yaml":                          "TestHelmChart",
		"helm/relman/.helmignore":                         "TestHelmChart (helm reads it to load the chart)",
		"helm/relman/values.yaml":                         "TestHelmChart",
		"helm/relman/templates/_helpers.tpl":              "TestHelmChart",
		"helm/relman/templates/NOTES.txt":                 "TestHelmChart (helm lint and template render it)",
		"helm/relman/templates/builder.yaml":              "TestHelmChart",
		"helm/relman/templates/build-signing-secret.yaml": "TestHelmChart",
		"helm/relman/templates/codec-server.yaml":         "TestHelmChart",
		"helm/relman/templates/configmaps.yaml":           "TestHelmChart",
		"helm/relman/templates/gateway-secret.yaml":       "TestHelmChart",
		"helm/relman/templates/installer.yaml":            "TestHelmChart",
		"helm/relman/templates/manager.yaml":              "TestHelmChart",
		"helm/relman/templates/serviceaccount.yaml":       "TestHelmChart",
		"helm/values/dev.yaml":                            "TestHelmChart",
		"helm/values/selfhosted-mtls.yaml":                "TestHelmChart",
		"helm/values/cloud.yaml":                          "TestHelmChart",
		"compose/compose.yaml":                            "TestComposeStack, TestComposeLoaderRefusesMisspeltKeys",
		"compose/manager.yaml":                            "TestComposeStack",
		"compose/builder.yaml":                            "TestComposeStack",
		"compose/installer-a.yaml":                        "TestComposeStack",
		"compose/installer-b.yaml":                        "TestComposeStack",
		"compose/setup-temporal.sh":                       "TestComposeTemporalSetup",
		"compose/dynamicconfig.yaml":                      "TestComposeTemporalSetup",
	}
	var files []string
	require.NoError(t, filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		files = append(files, filepath.ToSlash(p))
		return nil
	}))
	sort.Strings(files)
	for _, f := range files {
		_, ok := checkedBy[f]
		assert.True(t, ok, "deployments/%s is checked by no test; add a test and list it here", f)
	}
	for f := range checkedBy {
		assert.FileExists(t, f, "listed but gone")
	}
}

// TestOperationsGuide keeps the guide true to the code: its links resolve,
// it creates every search attribute relman sets, it names the queues
// relman polls, and the README links to it.
func TestOperationsGuide(t *testing.T) {
	guide := string(mustRead(t, "README.md"))

	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(guide, -1) {
		headings[slug(m[1])] = true
	}
	for _, m := range regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(guide, -1) {
		link := m[1]
		switch {
		case strings.HasPrefix(link, "http://"), strings.HasPrefix(link, "https://"):
		case strings.HasPrefix(link, "#"):
			assert.True(t, headings[strings.TrimPrefix(link, "#")], "link %s names no heading", link)
		default:
			_, err := os.Stat(filepath.FromSlash(link))
			assert.NoError(t, err, "link %s points at nothing", link)
		}
	}

	for _, sa := range workflows.SearchAttributes {
		assert.Contains(t, guide, "temporal operator search-attribute create --namespace relman --name "+sa+" --type Keyword")
		assert.Contains(t, guide, sa, "the Cloud instructions")
	}
	for _, q := range []string{config.DefaultManagerQueue, workflows.BuildQueue(config.DefaultManagerQueue, "<project>"), workflows.HostQueue(config.DefaultManagerQueue, "<host>"), config.DefaultRegistryID} {
		assert.Contains(t, guide, "`"+q+"`")
	}
	// The upgrade guide's numbers are the defaults.
	assert.Contains(t, guide, "finish for "+config.DefaultStopTimeout.String()+" (`config.DefaultStopTimeout`)")
	assert.Contains(t, guide, "(`timeouts.heartbeat`, "+config.DefaultHeartbeatTimeout.String()+" by default)")
	assert.Contains(t, guide, "Order: managers first, then builders and installers")
	stop := parseUnit(t, mustRead(t, filepath.Join("systemd", "relman-"+deployments.Roles[0]+".service")))["TimeoutStopSec"][0]
	assert.Contains(t, guide, "`TimeoutStopSec="+stop+"`")
	assert.True(t, strings.Contains(string(mustRead(t, filepath.Join("..", "README.md"))), "(deployments/README.md)"), "the README must link the operations guide")
}

// slug is GitHub's anchor for a heading.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}
