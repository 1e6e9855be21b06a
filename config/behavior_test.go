package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReleaseAndHealthDefaults(t *testing.T) {
	c := &Installer{Service: Service{Version: 1}, Host: "h", Trust: InstallerTrust{ManagerKeyFiles: []string{"orders.key.pub"}},
		Environments: map[string]map[string]InstallBehavior{"test": {
			"app": {Behavior: BehaviorRelease, Path: "/srv/app", Shared: []string{"logs", "public/uploads"},
				Health: &HealthCheck{HTTP: "http://127.0.0.1:8080/health"}},
		}}}
	c.Default()
	require.NoError(t, c.Validate())
	b := c.Environments["test"]["app"]
	assert.Equal(t, DefaultKeep, b.Keep)
	assert.Equal(t, DefaultHealthTimeout, b.Health.Timeout)
	assert.Equal(t, DefaultHealthInterval, b.Health.Interval)
	assert.Equal(t, 1+DefaultHealthRetries, b.Health.Tries())
	zero := 0
	assert.Equal(t, 1, (&HealthCheck{Retries: &zero}).Tries())
}

func TestReleaseAndHealthValidation(t *testing.T) {
	neg := -1
	c := &Installer{Service: Service{Version: 1}, Host: "h",
		Environments: map[string]map[string]InstallBehavior{"test": {
			"app":  {Behavior: BehaviorRelease, Keep: -2, Shared: []string{"../etc", "logs", "logs", ".hidden"}},
			"web":  {Behavior: BehaviorUnarchive, Path: "/srv/web", Keep: 3, Shared: []string{"logs"}, Health: &HealthCheck{}},
			"tool": {Behavior: BehaviorCopy, Path: "/srv/tool", Health: &HealthCheck{HTTP: "ftp://x", Retries: &neg, Timeout: -time.Second}},
		}}}
	c.Default()
	var got []string
	for _, p := range problemsOf(t, c.Validate()) {
		got = append(got, p.Field)
	}
	for _, want := range []string{
		"environments.test.app.path", "environments.test.app.keep", "environments.test.app.shared",
		"environments.test.web.keep", "environments.test.web.shared", "environments.test.web.health",
		"environments.test.tool.health.http", "environments.test.tool.health.retries", "environments.test.tool.health.timeout",
	} {
		assert.Contains(t, got, want)
	}
	for _, ok := range []string{"logs", "public/uploads", "a.b"} {
		assert.True(t, ValidSharedName(ok), ok)
	}
	for _, bad := range []string{"", "/abs", "..", "a/../b", ".git", "a//b", "a/"} {
		assert.False(t, ValidSharedName(bad), bad)
	}
}
