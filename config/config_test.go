package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// write puts a config into a fresh directory, so relative paths in it
// resolve somewhere the test controls.
func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "want *config.Error, got %T: %v", err, err)
	return e.Problems
}

func TestLoadValid(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)

	tests := map[string]struct {
		load  func(string) (any, error)
		file  string
		check func(t *testing.T, c any)
	}{
		"manager": {
			load: func(p string) (any, error) { return LoadManager(p) },
			file: "manager.yaml",
			check: func(t *testing.T, c any) {
				m := c.(*Manager)
				assert.Equal(t, filepath.Join(dir, "manager.yaml"), m.Path())
				assert.Equal(t, dir, m.Dir())
				assert.Equal(t, "localhost:7233", m.Temporal.Address)
				assert.Equal(t, "releases", m.Temporal.Namespace)
				assert.Equal(t, "info", m.Logging.Level)
				assert.Equal(t, filepath.Join(dir, "logs/manager.log"), m.Logging.Path)
				assert.Equal(t, "relman-manager", m.ManagerQueue)
				assert.Equal(t, "relman-registry", m.RegistryID)
				assert.Equal(t, 10000, m.ListenPort)
				assert.Equal(t, 2*time.Hour, m.Timeouts.Build)
				assert.Equal(t, 30*time.Minute, m.Timeouts.Install)
				assert.Equal(t, 5*time.Minute, m.Timeouts.Host)
				assert.True(t, m.Environments["prod"].Protected)
				assert.Equal(t, []string{"web", "docs"}, m.Projects["template"].Targets)
				assert.Empty(t, m.Artifacts, "a manager's store is optional: none, no records")
				assert.Empty(t, m.RecordsKeyFile)
				assert.Equal(t, 30*24*time.Hour, m.MinRetention)
			},
		},
		"builder": {
			load: func(p string) (any, error) { return LoadBuilder(p) },
			file: "builder.yaml",
			check: func(t *testing.T, c any) {
				b := c.(*Builder)
				assert.Equal(t, "build-1", b.Name)
				assert.Equal(t, filepath.Join(dir, "scratch"), b.WorkDir)
				assert.Equal(t, "file://"+filepath.Join(dir, "store"), b.Artifacts)
				assert.Equal(t, 60*time.Second, b.Lease)
				p := b.Projects["template"]
				assert.Equal(t, filepath.Join(dir, "repo"), p.Source.Git)
				assert.Equal(t, "step-1", p.Steps[0].Name)
				assert.Equal(t, 30*time.Minute, p.Steps[0].Timeout)
				assert.Equal(t, "docs", p.Steps[1].Name)
				assert.Equal(t, 5*time.Minute, p.Steps[1].Timeout)
				assert.Equal(t, "doc", p.Steps[1].Dir, "step dirs stay relative to the checkout")
				assert.Equal(t, "build/web", p.Outputs["web"].Path, "outputs stay relative to the checkout")
				assert.Equal(t, "https://svn.example.com/legacy", b.Projects["legacy"].Source.Svn)
			},
		},
		"installer": {
			load: func(p string) (any, error) { return LoadInstaller(p) },
			file: "installer.yaml",
			check: func(t *testing.T, c any) {
				in := c.(*Installer)
				assert.Equal(t, "web-1", in.Host)
				assert.Equal(t, filepath.Join(dir, "work"), in.WorkDir)
				assert.Equal(t, "file://"+filepath.Join(dir, "artifacts"), in.Artifacts)
				assert.Equal(t, 30*time.Second, in.Lease)
				assert.Equal(t, filepath.Join(dir, "certs/ca.pem"), in.Temporal.TLSCACertPath)
				assert.Equal(t, []string{filepath.Join(dir, "orders.key.pub")}, in.Trust.ManagerKeyFiles, "key files are against the config's folder")
				assert.Len(t, in.Trust.ManagerKeys, 1)
				test := in.Environments["test"]
				assert.Equal(t, filepath.Join(dir, "www"), test["web"].Path)
				assert.Equal(t, 10*time.Minute, test["web"].Timeout)
				assert.Equal(t, "", test["web"].Mode, "only copy gets a default mode")
				assert.Equal(t, "/srv/docs", test["docs"].Path)
				assert.Equal(t, "0644", test["docs"].Mode)
				mode, err := test["docs"].FileMode()
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o644), mode)
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := tc.load(filepath.Join("testdata", tc.file))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestBuilderNameDefaultsToHostname(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	p := write(t, "builder.yaml", `
version: 1
projects:
  x:
    source: {git: "https://example.com/x.git"}
    steps: [{run: [make]}]
    outputs: {bin: {path: bin/x}}
`)
	b, err := LoadBuilder(p)
	if ValidName(strings.ToLower(host)) {
		require.NoError(t, err)
	}
	assert.Equal(t, strings.ToLower(host), b.Name)
	assert.Equal(t, "https://example.com/x.git", b.Projects["x"].Source.Git)
}

func TestLoadUnknownField(t *testing.T) {
	tests := map[string]struct {
		file string
		body string
		want string
	}{
		"manager top level": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nfoo: 1\nauth: {anonymous: true}\n",
			want: `manager.yaml:4: unknown field "foo"`,
		},
		"manager typo with suggestion": {
			file: "manager.yaml",
			body: "version: 1\nenvironments:\n  test: {}\nprojects:\n  p:\n    targest: [a]\nauth: {anonymous: true}\n",
			want: `manager.yaml:6: unknown field "targest"; did you mean "targets"?`,
		},
		"builder step": {
			file: "builder.yaml",
			body: "version: 1\nprojects:\n  p:\n    source: {git: x}\n    steps:\n      - run: [make]\n        cmd: [x]\n",
			want: `builder.yaml:7: unknown field "cmd"`,
		},
		"installer behavior": {
			file: "installer.yaml",
			body: "version: 1\nhost: h\nenvironments:\n  test:\n    web:\n      behavior: copy\n      path: /srv\n      owner: root\n",
			want: `installer.yaml:8: unknown field "owner"`,
		},
		"under rollout": {
			file: "manager.yaml",
			body: "version: 1\nauth: {anonymous: true}\nprojects: {p: {targets: [a]}}\nenvironments:\n  prod:\n    rollout: {stratgy: rolling}\n",
			want: `manager.yaml:6: unknown field "stratgy"; did you mean "strategy"?`,
		},
		"under health": {
			file: "installer.yaml",
			body: "version: 1\nhost: h\nenvironments:\n  test:\n    web:\n      behavior: copy\n      path: /srv\n      health: {retires: 2}\n",
			want: `installer.yaml:8: unknown field "retires"; did you mean "retries"?`,
		},
		"under auth": {
			file: "manager.yaml",
			body: "version: 1\nauth: {anonymus: true}\nprojects: {p: {targets: [a]}}\nenvironments: {test: {}}\n",
			want: `manager.yaml:2: unknown field "anonymus"; did you mean "anonymous"?`,
		},
		"under gateway": {
			file: "manager.yaml",
			body: "version: 1\nauth: {anonymous: true}\ngateway: {tls_cert: x}\nprojects: {p: {targets: [a]}}\nenvironments: {test: {}}\n",
			want: `manager.yaml:3: unknown field "tls_cert"`,
		},
		"ldap realm typo": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth:\n  realms:\n    corp:\n      ldap:\n        url: ldap://dir\n        user_db: x\n",
			want: `manager.yaml:9: unknown field "user_db"; did you mean "user_dn"?`,
		},
		"realm kind": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth:\n  realms:\n    corp:\n      ldaps: {}\n",
			want: `manager.yaml:7: unknown field "ldaps"; did you mean "ldap"?`,
		},
		"inline service field": {
			file: "installer.yaml",
			body: "version: 1\nhost: h\ntemporal:\n  adress: x:1\n",
			want: `installer.yaml:4: unknown field "adress"; did you mean "address"?`,
		},
	}
	loaders := map[string]func(string) error{
		"manager.yaml":   func(p string) error { _, err := LoadManager(p); return err },
		"builder.yaml":   func(p string) error { _, err := LoadBuilder(p); return err },
		"installer.yaml": func(p string) error { _, err := LoadInstaller(p); return err },
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := write(t, tc.file, tc.body)
			err := loaders[tc.file](p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Dir(p)+string(filepath.Separator)+tc.want)
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	p := write(t, "builder.yaml", `version: 1
name: b1
lease: 1s
projects:
  template:
    source: {git: ./repo}
    steps:
      - name: build
        run: []
    outputs:
      web: {path: ../web}
`)
	b, err := LoadBuilder(p)
	require.Error(t, err)
	require.NotNil(t, b, "the config comes back with its problems")
	got := problemsOf(t, err)
	require.Len(t, got, 3, err.Error())
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, p+": lease: 1s is too short; want at least 3s", lines[0])
	assert.Equal(t, p+": projects.template.steps[0]: run is empty", lines[1])
	assert.Equal(t, p+`: projects.template.outputs.web.path: "../web" has a .. component; want a path inside the checkout`, lines[2])
}

func TestDecodeAndValidationProblemsTogether(t *testing.T) {
	p := write(t, "manager.yaml", "version: 1\nlisten_port: many\nenvironments: {test: {}}\nprojects: {}\nauth: {anonymous: true}\n")
	_, err := LoadManager(p)
	got := problemsOf(t, err)
	require.Len(t, got, 2, err.Error())
	assert.Equal(t, Problem{Line: 2, Msg: "want an integer, not a string `many`"}, got[0])
	assert.Equal(t, "projects", got[1].Field)
}

func TestVersion(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"missing":     {body: "host: h\nenvironments: {test: {web: {behavior: command, command: [x]}}}\n", want: ": version: missing; add `version: 1`"},
		"newer":       {body: "version: 2\nhost: h\nsomething_new: true\n", want: ":1: version: 2 is not supported; this relman reads version 1"},
		"zero":        {body: "version: 0\n", want: ":1: version: 0 is not supported"},
		"not integer": {body: "version: one\nhost: h\n", want: ":1: want an integer, not a string `one`"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := write(t, "installer.yaml", tc.body)
			_, err := LoadInstaller(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+tc.want)
		})
	}
}

func TestVersionFromFutureIsTheOnlyProblem(t *testing.T) {
	p := write(t, "installer.yaml", "version: 2\nhost: h\nsomething_new: true\n")
	c, err := LoadInstaller(p)
	assert.Nil(t, c)
	assert.Equal(t, p+":1: version: 2 is not supported; this relman reads version 1", err.Error())
}

func TestBadNames(t *testing.T) {
	tests := map[string]struct {
		file  string
		body  string
		field string
	}{
		"manager project": {
			file:  "manager.yaml",
			body:  "version: 1\nenvironments: {test: {}}\nprojects: {My_Project: {targets: [a]}}\nauth: {anonymous: true}\n",
			field: "projects.My_Project",
		},
		"manager env": {
			file:  "manager.yaml",
			body:  "version: 1\nenvironments: {-prod: {}}\nprojects: {p: {targets: [a]}}\nauth: {anonymous: true}\n",
			field: "environments.-prod",
		},
		"manager target": {
			file:  "manager.yaml",
			body:  "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a, 'b c']}}\nauth: {anonymous: true}\n",
			field: "projects.p.targets[1]",
		},
		"builder name": {
			file:  "builder.yaml",
			body:  "version: 1\nname: Build/1\nprojects: {p: {source: {git: x}, steps: [{run: [make]}], outputs: {a: {path: a}}}}\n",
			field: "name",
		},
		"builder output target": {
			file:  "builder.yaml",
			body:  "version: 1\nname: b\nprojects: {p: {source: {git: x}, steps: [{run: [make]}], outputs: {A: {path: a}}}}\n",
			field: "projects.p.outputs.A",
		},
		"installer host too long": {
			file:  "installer.yaml",
			body:  "version: 1\nhost: " + strings.Repeat("h", 64) + "\ntrust: {manager_key_files: [k.pub]}\nenvironments: {test: {a: {behavior: command, command: [x]}}}\n",
			field: "host",
		},
		"installer target": {
			file:  "installer.yaml",
			body:  "version: 1\nhost: h\ntrust: {manager_key_files: [k.pub]}\nenvironments: {test: {'': {behavior: command, command: [x]}}}\n",
			field: "environments.test.",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := write(t, tc.file, tc.body)
			_, err := Load(p)
			got := problemsOf(t, err)
			require.Len(t, got, 1, err.Error())
			assert.Equal(t, tc.field, got[0].Field)
			assert.Contains(t, got[0].Msg, "is invalid; use 1 to 63 lowercase letters")
		})
	}
}

func TestValidateRules(t *testing.T) {
	tests := map[string]struct {
		file string
		body string
		want []string
	}{
		"manager empty": {
			file: "manager.yaml",
			body: "version: 1\nlisten_port: 70000\nenvironments: {}\n",
			want: []string{
				"listen_port: 70000 is not a port; want 0 to 65535",
				"environments: none defined",
				// projects is absent, but Load still knows the role
				// from listen_port.
				"projects: none defined",
				// authentication must be chosen, not left out
				"auth: set users_file",
			},
		},
		"manager queue like a host's": {
			file: "manager.yaml",
			body: "version: 1\nmanager_queue: relman-host-prod\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth: {anonymous: true}\n",
			want: []string{`manager_queue: "relman-host-prod" looks like a queue relman names for builders or hosts`},
		},
		"installer serving a manager named like a build queue": {
			file: "installer.yaml",
			body: "version: 1\nhost: h\nmanagers: [{manager_queue: a, registry_id: a}, {manager_queue: \"team:relman-build-x\", registry_id: r}]\ntrust: {manager_key_files: [orders.key.pub]}\nenvironments: {test: {web: {behavior: copy, path: /srv}}}\n",
			want: []string{`managers[1].manager_queue: "team:relman-build-x" looks like a queue`},
		},
		"manager targets": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: []}, q: {targets: [a, a]}}\ntimeouts: {host: -1s}\nauth: {anonymous: true}\n",
			want: []string{
				"projects.p.targets: none defined",
				`projects.q.targets[1]: target "a" is listed twice`,
				"timeouts.host: -1s is negative",
			},
		},
		"manager records": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth: {anonymous: true}\nrecords_key_file: k\nmin_retention: -1h\n",
			want: []string{
				"records_key_file: set without artifacts; records need a store",
				"min_retention: -1h0m0s is negative",
			},
		},
		"manager records store": {
			file: "manager.yaml",
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth: {anonymous: true}\nartifacts: \"://nope\"\n",
			want: []string{`artifacts: "://nope" is not a store URL`},
		},
		"manager realms": {
			file: "manager.yaml",
			body: `version: 1
environments: {test: {}}
projects: {p: {targets: [a]}}
auth:
  realms:
    local: {ldap: {url: "ldap://dir", start_tls: true, user_dn: "uid=%s,dc=x", group_base: "dc=x", roles: {admins: admin}}}
    Corp: {}
    corp:
      ldap: {url: "http://dir", user_dn: "uid=alice", roles: {deployers: ""}, timeout: -1s}
`,
			want: []string{
				`auth.realms.Corp: realm name "Corp" is invalid`,
				`auth.realms.corp.ldap.url: "http://dir" is not an ldap:// or ldaps:// URL with a host`,
				`auth.realms.corp.ldap.user_dn: "uid=alice" must hold %s exactly once`,
				"auth.realms.corp.ldap.group_base: missing",
				"auth.realms.corp.ldap.roles.deployers: the role is empty",
				"auth.realms.corp.ldap.timeout: -1s is negative",
				`auth.realms.local: "local" is the users file's realm; give this realm another name`,
			},
		},
		"builder sources and steps": {
			file: "builder.yaml",
			body: `version: 1
name: b
projects:
  none: {steps: [{run: [make]}], outputs: {a: {path: a}}}
  both: {source: {git: x, svn: "https://s/x"}, steps: [{run: [make]}], outputs: {a: {path: a}}}
  svnpath: {source: {svn: ./x}, steps: [{run: [make]}], outputs: {a: {path: a}}}
  nosteps: {source: {git: x}, outputs: {a: {path: a}}}
  bad: {source: {git: x}, steps: [{run: [a], timeout: -1s, dir: /abs}, {name: step-1, run: [b]}], outputs: {a: {path: /abs}}}
  noout: {source: {git: x}, steps: [{run: [make]}]}
`,
			want: []string{
				"projects.bad.steps[0].timeout: -1s is negative",
				`projects.bad.steps[0].dir: "/abs" is absolute`,
				`projects.bad.steps[1]: name "step-1" is already used by steps[0]`,
				`projects.bad.outputs.a.path: "/abs" is absolute`,
				"projects.both.source: both git and svn are set",
				"projects.none.source: neither git nor svn is set",
				"projects.nosteps.steps: none defined",
				"projects.noout.outputs: none defined",
				`projects.svnpath.source.svn: "./x" is not a URL`,
			},
		},
		"installer behaviors": {
			file: "installer.yaml",
			body: `version: 1
host: h
lease: 2s
trust: {manager_key_files: [k.pub]}
logging: {level: loud}
temporal: {tls_cert_path: c.pem, address: nohost}
environments:
  empty: {}
  test:
    a: {behavior: unarchive}
    b: {behavior: copy, path: /x, mode: "0999"}
    c: {behavior: command}
    e: {path: /x}
`,
			want: []string{
				"lease: 2s is too short; want at least 3s",
				`logging.level: "loud" is unknown`,
				"temporal: tls_cert_path and tls_key_path go together",
				`temporal.address: "nohost" is not host:port`,
				"environments.empty: no targets",
				"environments.test.a.path: missing; unarchive needs the path",
				`environments.test.b.mode: mode "0999" is not an octal file mode`,
				"environments.test.c.command: empty",
				"environments.test.e.behavior: missing",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := write(t, tc.file, tc.body)
			_, err := Load(p)
			got := problemsOf(t, err)
			msg := err.Error()
			for _, w := range tc.want {
				assert.Contains(t, msg, p+": "+w)
			}
			assert.Len(t, got, len(tc.want), msg)
		})
	}
}

// A behavior name the config does not know loads: which names exist is the
// installer's registry's business (behavior.Registry.Check), so configs load
// before and without any registration.
func TestCustomBehaviorLoads(t *testing.T) {
	body := "version: 1\nhost: h\ntrust: {manager_key_files: [k.pub]}\nenvironments: {test: {db: {behavior: migrate-db, options: {dsn: x}}}}\n"
	c, err := LoadInstaller(write(t, "installer.yaml", body))
	require.NoError(t, err)
	assert.Equal(t, "x", c.Environments["test"]["db"].Options["dsn"])
}

func TestApplyEnv(t *testing.T) {
	file := Temporal{Address: "file:7233", Namespace: "filens", TLSCertPath: "/file/cert.pem"}
	tests := map[string]struct {
		env  map[string]string
		want Temporal
	}{
		"nothing set": {
			env:  nil,
			want: file,
		},
		"empty counts as unset": {
			env:  map[string]string{"TEMPORAL_ADDRESS": "", "TEMPORAL_TLS": ""},
			want: file,
		},
		"everything": {
			env: map[string]string{
				"TEMPORAL_ADDRESS":         "temporal.example.com:7233",
				"TEMPORAL_NAMESPACE":       "prod",
				"TEMPORAL_API_KEY":         "secret",
				"TEMPORAL_TLS":             "true",
				"TEMPORAL_TLS_CERT":        "c.pem",
				"TEMPORAL_TLS_KEY":         "k.pem",
				"TEMPORAL_TLS_CA":          "ca.pem",
				"TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
			},
			want: Temporal{
				Address: "temporal.example.com:7233", Namespace: "prod", APIKey: "secret", TLS: true,
				TLSCertPath: "c.pem", TLSKeyPath: "k.pem", TLSCACertPath: "ca.pem", TLSServerName: "temporal.internal",
			},
		},
		"tls off": {
			env:  map[string]string{"TEMPORAL_TLS": "false"},
			want: file,
		},
		"tls garbage means on": {
			env: map[string]string{"TEMPORAL_TLS": "yes please"},
			want: Temporal{Address: "file:7233", Namespace: "filens", TLSCertPath: "/file/cert.pem",
				TLS: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := file
			got.ApplyEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestApplyEnvTurnsTLSOffOverFile(t *testing.T) {
	tp := Temporal{TLS: true}
	tp.ApplyEnv(func(k string) (string, bool) { return "0", k == EnvTLS })
	assert.False(t, tp.TLS)
}

func TestTLSEnabled(t *testing.T) {
	assert.False(t, (&Temporal{Address: "x:1"}).TLSEnabled())
	assert.True(t, (&Temporal{TLS: true}).TLSEnabled())
	assert.True(t, (&Temporal{APIKey: "k"}).TLSEnabled())
	assert.True(t, (&Temporal{TLSCACertPath: "/ca"}).TLSEnabled())
}

func TestLoadSniffsRole(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"installer by host": {
			body: "version: 1\nhost: h\nenvironments: {test: {a: {behavior: command, command: [x]}}}\n",
			want: "*config.Installer",
		},
		"installer without host by behaviors": {
			body: "version: 1\nenvironments: {test: {a: {behavior: command, command: [x]}}}\n",
			want: "*config.Installer",
		},
		"manager by listen_port": {
			body: "version: 1\nlisten_port: 9000\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\n",
			want: "*config.Manager",
		},
		"manager by targets": {
			body: "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\n",
			want: "*config.Manager",
		},
		"manager by environments only": {
			body: "version: 1\nenvironments: {prod: {protected: true}}\n",
			want: "*config.Manager",
		},
		"builder by projects": {
			body: "version: 1\nname: b\nprojects: {p: {source: {git: x}, steps: [{run: [make]}], outputs: {a: {path: a}}}}\n",
			want: "*config.Builder",
		},
		"builder otherwise": {
			body: "version: 1\n",
			want: "*config.Builder",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, _ := Load(write(t, "relman.yaml", tc.body))
			require.NotNil(t, c)
			assert.Equal(t, tc.want, typeName(c))
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *Manager:
		return "*config.Manager"
	case *Builder:
		return "*config.Builder"
	case *Installer:
		return "*config.Installer"
	}
	return "?"
}

func TestLoadFatal(t *testing.T) {
	tests := map[string]struct {
		body string
		want string
	}{
		"syntax":          {body: "version: 1\nhost: [a\n", want: ":1: did not find expected ',' or ']'"}, // yaml.v3 reports where the list began, off by one
		"not a mapping":   {body: "- version: 1\n", want: ": the top level is not a mapping of settings"},
		"second document": {body: "version: 1\nhost: h\n---\nhost: g\n", want: ":3: a second YAML document"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := write(t, "installer.yaml", tc.body)
			_, err := Load(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+tc.want)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		c, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		assert.Nil(t, c)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("syntax error gives no config", func(t *testing.T) {
		c, err := LoadManager(write(t, "manager.yaml", "version: 1\n  bad: indent\n"))
		assert.Nil(t, c)
		assert.Error(t, err)
	})
}

func TestDurationTypeError(t *testing.T) {
	p := write(t, "builder.yaml", "version: 1\nlease: 60\n")
	_, err := LoadBuilder(p)
	assert.ErrorContains(t, err, p+":2: want a duration such as 90s, 5m or 1h, not a number `60`")
}

func TestArtifactsURL(t *testing.T) {
	dir := "/etc/relman"
	tests := map[string]struct{ in, want string }{
		"default":          {in: "", want: "file:///etc/relman/artifacts"},
		"dot relative":     {in: "file://./store", want: "file:///etc/relman/store"},
		"bare relative":    {in: "file://store", want: "file:///etc/relman/store"},
		"parent":           {in: "file://../store", want: "file:///etc/store"},
		"keeps query":      {in: "file://store?create_dir=true", want: "file:///etc/relman/store?create_dir=true"},
		"absolute file":    {in: "file:///srv/store", want: "file:///srv/store"},
		"plain relative":   {in: "store", want: "file:///etc/relman/store"},
		"plain absolute":   {in: "/srv/store", want: "file:///srv/store"},
		"space is escaped": {in: "my store", want: "file:///etc/relman/my%20store"},
		"s3 untouched":     {in: "s3://bucket?region=us-east-1", want: "s3://bucket?region=us-east-1"},
		"mem untouched":    {in: "mem://", want: "mem://"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, artifactsURL(tc.in, dir))
		})
	}
}

func TestIsLocalRelative(t *testing.T) {
	tests := map[string]struct {
		in   string
		want bool
	}{
		"dot":       {in: "./repo", want: true},
		"dotdot":    {in: "../x", want: true},
		"bare":      {in: "repo", want: true},
		"nested":    {in: "a/b:c", want: true},
		"absolute":  {in: "/srv/repo", want: false},
		"https":     {in: "https://example.com/x.git", want: false},
		"file url":  {in: "file:///srv/x", want: false},
		"scp":       {in: "git@example.com:x.git", want: false},
		"host path": {in: "example.com:x", want: false},
		"empty":     {in: "", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, isLocalRelative(tc.in))
		})
	}
}

func TestParseLevel(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		"debug":   {in: "debug", want: slog.LevelDebug},
		"info":    {in: "info", want: slog.LevelInfo},
		"warn":    {in: "WARN", want: slog.LevelWarn},
		"warning": {in: "warning", want: slog.LevelWarn},
		"error":   {in: " error ", want: slog.LevelError},
		"empty":   {in: "", wantErr: true},
		"bogus":   {in: "trace", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if tc.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestDefaultInCode(t *testing.T) {
	// Configs built in code (tests, `relman dev`) have no file; defaults
	// must still be absolute and Default must be safe to repeat.
	c := &Installer{Service: Service{Version: 1}, Host: "h", Trust: InstallerTrust{ManagerKeyFiles: []string{"orders.key.pub"}},
		Environments: map[string]map[string]InstallBehavior{"test": {"a": {Behavior: "copy", Path: "/x"}}}}
	c.Default()
	first := *c
	c.Default()
	assert.Equal(t, first.WorkDir, c.WorkDir)
	assert.Equal(t, first.Artifacts, c.Artifacts)
	assert.True(t, filepath.IsAbs(c.WorkDir))
	require.NoError(t, c.Validate())

	c.Host = ""
	assert.EqualError(t, c.Validate(), "installer config: host: missing; set the name this host registers under")
}

func TestLDAPRealmLoads(t *testing.T) {
	p := write(t, "manager.yaml", `version: 1
environments: {test: {}}
projects: {p: {targets: [a]}}
auth:
  realms:
    corp:
      ldap:
        url: ldaps://ldap.example.org
        user_dn: "uid=%s,ou=people,dc=example,dc=org"
        group_base: "ou=groups,dc=example,dc=org"
        ca_file: certs/ca.pem
        roles: {cn=deployers: deployer, testers: tester}
    htpasswd: {}  # registered in code by the manager binary
policy:
  - {roles: [deployer], actions: [install], projects: ["*"], environments: ["*"]}
`)
	c, err := LoadManager(p)
	require.NoError(t, err)
	assert.True(t, c.Auth.Enabled(), "a realm alone turns authentication on")
	assert.Equal(t, filepath.Join(filepath.Dir(p), "gateway.secret"), c.Auth.SecretFile, "no users file: the secret sits beside the config")
	l := c.Auth.Realms["corp"].LDAP
	require.NotNil(t, l)
	assert.Equal(t, filepath.Join(filepath.Dir(p), "certs", "ca.pem"), l.CAFile)
	assert.Equal(t, map[string]string{"cn=deployers": "deployer", "testers": "tester"}, l.Roles)
	assert.Nil(t, c.Auth.Realms["htpasswd"].LDAP)
}

// TestProtectedAndLockTimeout: protected implies approval with four eyes
// and refuses approval: none; lock_timeout defaults to an hour.
func TestProtectedAndLockTimeout(t *testing.T) {
	base := "version: 1\nauth: {anonymous: true}\nprojects: {p: {targets: [a]}}\n"
	c, err := LoadManager(write(t, "manager.yaml", base+"environments: {prod: {protected: true}, test: {lock_timeout: 5m}}\n"))
	require.NoError(t, err)
	prod := c.Environments["prod"]
	assert.Equal(t, "required", prod.Approval)
	assert.True(t, prod.FourEyes)
	assert.Equal(t, DefaultLockTimeout, prod.LockTimeout)
	assert.Equal(t, 5*time.Minute, c.Environments["test"].LockTimeout)
	assert.Equal(t, "none", c.Environments["test"].Approval)

	for name, tc := range map[string]struct{ env, want string }{
		"protected without approval": {"{prod: {protected: true, approval: none}}", "environments.prod.approval"},
		"negative lock_timeout":      {"{test: {lock_timeout: -1s}}", "environments.test.lock_timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadManager(write(t, "manager.yaml", base+"environments: "+tc.env+"\n"))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/XXXXSECRET":  "https://hooks.slack.com/…",
		"https://chat.example.com/hook?token=s3cret":         "https://chat.example.com/…",
		"https://user:pass@chat.example.com":                 "https://chat.example.com/…",
		"http://127.0.0.1:8080/":                             "http://127.0.0.1:8080",
		"http://127.0.0.1:8080":                              "http://127.0.0.1:8080",
		"::not a url":                                        "(a webhook URL)",
		"https://chat.example.com/#fragment-with-secret-key": "https://chat.example.com/…",
	} {
		got := RedactURL(raw)
		assert.Equal(t, want, got, raw)
		assert.NotContains(t, got, "SECRET")
	}
}

// TestGatewayTransport: the gateway carries passwords, so off loopback it
// serves TLS, or plain HTTP only where the config says insecure: true in
// so many words.
func TestGatewayTransport(t *testing.T) {
	base := "version: 1\nauth: {anonymous: true}\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\n"
	for name, tc := range map[string]struct {
		extra string
		want  string // "" for accepted
	}{
		"loopback, plain":              {"listen_address: 127.0.0.1\n", ""},
		"default address, plain":       {"", ""},
		"every interface, plain":       {"listen_address: 0.0.0.0\n", "passwords would cross the network in clear"},
		"a host's address, plain":      {"listen_address: 192.0.2.10\n", "gateway.tls_cert_path"},
		"every interface, TLS":         {"listen_address: 0.0.0.0\ngateway: {tls_cert_path: c.pem, tls_key_path: k.pem}\n", ""},
		"every interface, insecure":    {"listen_address: 0.0.0.0\ngateway: {insecure: true}\n", ""},
		"every interface, gateway off": {"listen_address: 0.0.0.0\ngateway: {off: true}\n", ""},
		"certificate without key":      {"gateway: {tls_cert_path: c.pem}\n", "tls_cert_path and tls_key_path go together"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadManager(write(t, "manager.yaml", base+tc.extra))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestManagerRecordsStore: a manager's artifacts resolve as a builder's do,
// and its records key defaults to records.key beside the config.
func TestManagerRecordsStore(t *testing.T) {
	p := write(t, "manager.yaml", "version: 1\nenvironments: {test: {}}\nprojects: {p: {targets: [a]}}\nauth: {anonymous: true}\nartifacts: file://./store\nmin_retention: 168h\n")
	m, err := LoadManager(p)
	require.NoError(t, err)
	dir := filepath.Dir(p)
	assert.Equal(t, "file://"+filepath.Join(dir, "store"), m.Artifacts)
	assert.Equal(t, filepath.Join(dir, "records.key"), m.RecordsKeyFile)
	assert.Equal(t, 7*24*time.Hour, m.MinRetention)
}

func TestInstallerTrustValidated(t *testing.T) {
	var ok problems
	checkTrust(&ok, InstallerTrust{ManagerKeys: []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}})
	assert.Empty(t, ok.list)
	var files problems
	checkTrust(&files, InstallerTrust{ManagerKeyFiles: []string{"orders.key.pub"}})
	assert.Empty(t, files.list)
	var bad problems
	checkTrust(&bad, InstallerTrust{ManagerKeys: []string{"short"}})
	require.Len(t, bad.list, 1)
	assert.Equal(t, "trust.manager_keys[0]", bad.list[0].Field)
	var none problems
	checkTrust(&none, InstallerTrust{})
	require.Len(t, none.list, 1)
	assert.Equal(t, "trust", none.list[0].Field)
	assert.Contains(t, none.list[0].Msg, "relman manager-key")
}

func TestLoadClient(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "client.yaml")
	require.NoError(t, os.WriteFile(p, []byte("version: 1\nmanager_url: https://relman.example.com:10000/\nmanager_ca_path: ca.pem\ntoken_file: /secrets/bob.token\n"), 0o600))
	c, err := LoadClient(p)
	require.NoError(t, err)
	assert.Equal(t, "https://relman.example.com:10000/", c.ManagerURL)
	assert.Equal(t, filepath.Join(dir, "ca.pem"), c.ManagerCAPath, "relative to the file")
	assert.Equal(t, "/secrets/bob.token", c.TokenFile)

	require.NoError(t, os.WriteFile(p, []byte("manager_url: relman.example.com\nmanager_uri: x\n"), 0o600))
	_, err = LoadClient(p)
	require.Error(t, err)
	for _, want := range []string{"manager_uri", "version", "manager_url", "must be the manager's gateway URL"} {
		assert.Contains(t, err.Error(), want)
	}
}
