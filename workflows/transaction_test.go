package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/relman/relman/workflows"
)

func TestQueues(t *testing.T) {
	tests := map[string]struct {
		managerQueue, build, host string
	}{
		// The default manager's names never changed: running transactions
		// and saved histories use them.
		"default manager": {workflows.DefaultManagerQueue, "relman-build-template", "relman-host-host-a"},
		"unnamed":         {"", "relman-build-template", "relman-host-host-a"},
		"another manager": {"team-b", "team-b:relman-build-template", "team-b:relman-host-host-a"},
		// A manager queue that looks like the start of a default name
		// still gets names of its own.
		"lookalike": {"relman", "relman:relman-build-template", "relman:relman-host-host-a"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.build, workflows.BuildQueue(tc.managerQueue, "template"))
			assert.Equal(t, tc.host, workflows.HostQueue(tc.managerQueue, "host-a"))
		})
	}
}

func TestSelector(t *testing.T) {
	cases := []struct {
		sel   workflows.Selector
		name  string
		valid bool
	}{
		{workflows.Selector{}, "trunk", true},
		{workflows.Selector{Trunk: true}, "trunk", true},
		{workflows.Selector{Branch: "main"}, "branch main", true},
		{workflows.Selector{Tag: "v1"}, "tag v1", true},
		{workflows.Selector{Revision: "abc"}, "revision abc", true},
		{workflows.Selector{URL: "https://x/y.git"}, "url https://x/y.git", true},
		{workflows.Selector{Trunk: true, Branch: "main"}, "", false},
		{workflows.Selector{Branch: "main", Tag: "v1"}, "", false},
		{workflows.Selector{Revision: "abc", URL: "u"}, "", false},
	}
	for _, c := range cases {
		err := c.sel.Validate()
		if c.valid {
			assert.NoError(t, err, "%+v", c.sel)
			assert.Equal(t, c.name, c.sel.String())
		} else {
			assert.Error(t, err, "%+v", c.sel)
		}
	}
}

func TestStatusFinalAndSucceeded(t *testing.T) {
	build, install := workflows.ActionBuild, workflows.ActionInstall
	assert.False(t, workflows.StatusStarted.Final(build))
	assert.False(t, workflows.StatusStarted.Final(install))
	assert.True(t, workflows.StatusBuildCompleted.Final(build))
	assert.False(t, workflows.StatusBuildCompleted.Final(install))
	for _, s := range []workflows.Status{workflows.StatusInstallCompleted, workflows.StatusRejected,
		workflows.StatusBuildFailed, workflows.StatusInstallFailed, workflows.StatusCancelled} {
		assert.True(t, s.Final(build), s)
		assert.True(t, s.Final(install), s)
	}
	assert.True(t, workflows.StatusBuildCompleted.Succeeded(build))
	assert.False(t, workflows.StatusBuildCompleted.Succeeded(install))
	assert.True(t, workflows.StatusInstallCompleted.Succeeded(install))
	assert.False(t, workflows.StatusRejected.Succeeded(build))
	assert.False(t, workflows.StatusInstallFailed.Succeeded(install))
}

func TestRegistrationKey(t *testing.T) {
	assert.Equal(t, "installer/host-a", workflows.Registration{Role: workflows.RoleInstaller, ID: "host-a"}.Key())
	assert.Equal(t, "builder/host-a", workflows.Registration{Role: workflows.RoleBuilder, ID: "host-a"}.Key())
}
