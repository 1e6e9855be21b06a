package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const builderBody = `
version: 1
name: b
projects:
  x:
    source: {git: "https://example.com/x.git"}
    steps: [{run: [make]}]
    outputs: {bin: {path: bin/x}}
`

const installerBody = `
version: 1
host: h
trust: {manager_key_files: [orders.key.pub]}
environments:
  test: {web: {behavior: unarchive, path: /srv/www}}
`

func TestServedManagers(t *testing.T) {
	tests := map[string]struct {
		body string
		want []ManagerRef
	}{
		"default": {
			body: builderBody,
			want: []ManagerRef{{ManagerQueue: "relman-manager", RegistryID: "relman-registry"}},
		},
		"one manager spelled as before": {
			body: builderBody + "manager_queue: team-b\nregistry_id: team-b-registry\n",
			want: []ManagerRef{{ManagerQueue: "team-b", RegistryID: "team-b-registry"}},
		},
		"several": {
			body: builderBody + "managers:\n  - {manager_queue: relman-manager, registry_id: relman-registry}\n  - {manager_queue: team-b, registry_id: team-b-registry}\n",
			want: []ManagerRef{{ManagerQueue: "relman-manager", RegistryID: "relman-registry"}, {ManagerQueue: "team-b", RegistryID: "team-b-registry"}},
		},
		"an empty entry is the default manager": {
			body: builderBody + "managers: [{}, {manager_queue: team-b, registry_id: team-b-registry}]\n",
			want: []ManagerRef{{ManagerQueue: "relman-manager", RegistryID: "relman-registry"}, {ManagerQueue: "team-b", RegistryID: "team-b-registry"}},
		},
		"the one-manager spelling agreeing with the first": {
			body: builderBody + "manager_queue: team-b\nmanagers: [{manager_queue: team-b, registry_id: team-b-registry}]\n",
			want: []ManagerRef{{ManagerQueue: "team-b", RegistryID: "team-b-registry"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := LoadBuilder(write(t, "builder.yaml", tc.body))
			require.NoError(t, err)
			assert.Equal(t, tc.want, b.Served())
			assert.Equal(t, tc.want[0].ManagerQueue, b.ManagerQueue, "the service names the first manager")
			b.Default()
			require.NoError(t, b.Validate(), "Default is idempotent")
			assert.Equal(t, tc.want, b.Served())

			in, err := LoadInstaller(write(t, "installer.yaml", installerBody+strings.TrimPrefix(tc.body, builderBody)))
			require.NoError(t, err)
			assert.Equal(t, tc.want, in.Served())
		})
	}
}

func TestServedManagersBadInput(t *testing.T) {
	tests := map[string]struct {
		managers string
		field    string
		want     []string
	}{
		"the same manager twice": {
			managers: "managers:\n  - {manager_queue: team-b, registry_id: team-b-registry}\n  - {manager_queue: team-b, registry_id: team-b-registry}\n",
			field:    "managers[1]",
			want:     []string{"manager team-b is listed twice (also managers[0])", "list each manager once"},
		},
		"the same manager with another registry": {
			managers: "managers:\n  - {manager_queue: team-b, registry_id: team-b-registry}\n  - {manager_queue: team-b, registry_id: other}\n",
			field:    "managers[1]",
			want:     []string{"manager team-b is listed twice"},
		},
		"the default manager twice, once spelled empty": {
			managers: "managers: [{}, {manager_queue: relman-manager}]\n",
			field:    "managers[1]",
			want:     []string{"manager relman-manager is listed twice"},
		},
		"two managers with one registry": {
			managers: "managers:\n  - {manager_queue: relman-manager, registry_id: relman-registry}\n  - {manager_queue: team-b, registry_id: relman-registry}\n",
			field:    "managers[1].registry_id",
			want:     []string{"managers relman-manager and team-b both name registry relman-registry", "give team-b its own registry_id"},
		},
		"two managers, the second's registry left out": {
			managers: "managers:\n  - {manager_queue: relman-manager}\n  - {manager_queue: team-b}\n",
			field:    "managers[1].registry_id",
			want:     []string{"both name registry relman-registry"},
		},
		"both spellings naming different managers": {
			managers: "manager_queue: team-c\nmanagers: [{manager_queue: team-b, registry_id: team-b-registry}]\n",
			field:    "managers",
			want:     []string{"list every manager under managers and drop manager_queue and registry_id"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for role, body := range map[string]string{"builder": builderBody, "installer": installerBody} {
				_, err := Load(write(t, role+".yaml", body+tc.managers))
				require.Error(t, err, role)
				ps := problemsOf(t, err)
				require.Len(t, ps, 1, "%s: %v", role, err)
				assert.Equal(t, tc.field, ps[0].Field, role)
				for _, w := range tc.want {
					assert.Contains(t, ps[0].Msg, w, role)
				}
			}
		})
	}
}

func TestManagerListsNoManagers(t *testing.T) {
	_, err := LoadManager(write(t, "manager.yaml", "version: 1\nauth: {anonymous: true}\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nmanagers: [{manager_queue: x}]\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "managers")
}
