package xmlrpc

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// where's and rollback's request checks run before Temporal is touched;
// the e2e tests cover the rest with Python's client.
func TestRolloutRequestFaults(t *testing.T) {
	cfg := &config.Manager{
		Environments: map[string]config.Environment{"test": {}, "prod": {}},
		Projects:     map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}, "blog": {Targets: []string{"web"}}},
	}
	cfg.Default()
	hs := httptest.NewServer(NewHandler(nil, cfg, nil))
	defer hs.Close()
	cred := map[string]any{"username": "alice", "password": "hunter2"}
	tests := map[string]struct {
		method string
		params []any
		code   int
		msg    []string
	}{
		"where unknown key": {"where", []any{cred, map[string]any{"project": "shop", "env": "test", "to": "x"}}, CodeBadRequest,
			[]string{`"to"`, "where accepts: env, project"}},
		"rollback unknown key": {"rollback", []any{cred, map[string]any{"project": "shop", "env": "test", "trunk": true}}, CodeBadRequest,
			[]string{`"trunk"`, "rollback accepts: env, project, to"}},
		"no project":       {"where", []any{cred, map[string]any{"env": "test"}}, CodeBadRequest, []string{"needs a project"}},
		"unknown project":  {"rollback", []any{cred, map[string]any{"project": "nope", "env": "test"}}, CodeUnknownProject, []string{`"nope"`, "blog, shop"}},
		"no env":           {"where", []any{cred, map[string]any{"project": "shop"}}, CodeBadRequest, []string{"where needs env", "prod, test"}},
		"unknown env":      {"rollback", []any{cred, map[string]any{"project": "shop", "env": "qa"}}, CodeBadRequest, []string{`unknown env "qa"`, "prod, test"}},
		"env as int":       {"where", []any{cred, map[string]any{"project": "shop", "env": 3}}, CodeBadRequest, []string{"env must be a string, not int"}},
		"to with spaces":   {"rollback", []any{cred, map[string]any{"project": "shop", "env": "test", "to": "a b"}}, CodeBadRequest, []string{"to must be a transaction id"}},
		"data not struct":  {"where", []any{cred, "shop"}, CodeInvalidParams, []string{"request_data must be a struct"}},
		"one param":        {"rollback", []any{cred}, CodeInvalidParams, []string{"rollback takes (credentials, request_data); got 1 params"}},
		"cred not struct":  {"where", []any{"alice", map[string]any{}}, CodeInvalidParams, []string{"credentials must be a struct"}},
		"username not str": {"rollback", []any{map[string]any{"username": 7}, map[string]any{}}, CodeCredentialsRejected, []string{"username"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := rpc(t, hs.URL, tt.method, tt.params...)
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tt.code, f.Code, f.Message)
			for _, m := range tt.msg {
				assert.Contains(t, f.Message, m)
			}
			assert.NotContains(t, f.Message, "hunter2")
		})
	}
}

func TestWhereRows(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	got := whereRows(&workflows.WhereResult{
		Hosts: map[string]map[string]workflows.LiveInstall{
			"host-a": {
				"web": {Target: "web", Behavior: "release", Transaction: "tx-2", SHA256: "ab", Path: "/srv/web/releases/tx-2", InstalledAt: at, Releases: []string{"tx-1", "tx-2"}},
				"api": {Target: "api"},
			},
			"host-c": {"web": {Target: "web", Error: "state unreadable"}},
		},
		Errors: map[string]string{"host-b": "host host-b unreachable"},
	})
	assert.Equal(t, []any{
		map[string]any{"host": "host-a", "target": "api"},
		map[string]any{"host": "host-a", "target": "web", "behavior": "release", "transaction": "tx-2", "sha256": "ab",
			"path": "/srv/web/releases/tx-2", "installed_at": at.Truncate(time.Second), "releases": []string{"tx-1", "tx-2"}},
		map[string]any{"host": "host-b", "error": "host host-b unreachable"},
		map[string]any{"host": "host-c", "target": "web", "error": "state unreadable"},
	}, got)
}
