package deployments_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/deployments"
	"github.com/relman/relman/surface/cli"
)

var update = flag.Bool("update", false, "rewrite the units under systemd/ from relman.service.tmpl")

// TestPackagedUnits: the units under systemd/ are exactly what the template
// renders for the packaged layout, so the checked-in units and the ones
// `relman generate` writes come from one source.
func TestPackagedUnits(t *testing.T) {
	for _, role := range deployments.Roles {
		t.Run(role, func(t *testing.T) {
			got, err := deployments.SystemdUnit(deployments.Packaged(role))
			require.NoError(t, err)
			path := filepath.Join("systemd", "relman-"+role+".service")
			if *update {
				require.NoError(t, os.WriteFile(path, got, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "%s differs from the template; run go test ./deployments -run TestPackagedUnits -update", path)
		})
	}
}

func TestSystemdUnitRefusesWhatSystemdWouldMisread(t *testing.T) {
	cases := map[string]deployments.Unit{
		"unknown role":  {Role: "watcher", Relman: "/usr/bin/relman"},
		"relative path": {Role: "manager", Relman: "bin/relman"},
		"space in path": {Role: "builder", Relman: "/usr/bin/relman", ReadWritePaths: []string{"/srv/my builds"}},
		"specifier":     {Role: "installer", Relman: "/usr/bin/relman", Config: "/etc/relman/100%.yaml"},
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := deployments.SystemdUnit(u)
			assert.Error(t, err)
		})
	}
}

// unit is one rendered unit file and the config its role runs with.
type unit struct {
	body   []byte
	config string
}

// allUnits are the checked-in units and the ones `relman generate` writes
// for each role, keyed by file name.
func allUnits(t *testing.T) map[string]unit {
	t.Helper()
	units := map[string]unit{}
	for _, role := range deployments.Roles {
		name := "relman-" + role + ".service"
		b, err := os.ReadFile(filepath.Join("systemd", name))
		require.NoError(t, err)
		u := unit{body: b}
		if role != "codec-server" {
			u.config = filepath.Join("systemd", role+".yaml")
		}
		units[name] = u
	}
	dir := t.TempDir()
	for _, role := range []string{"manager", "builder", "installer"} {
		var out, errb bytes.Buffer
		code := cli.Execute(context.Background(), []string{"generate", role, "gen-" + role, "--dir", dir}, cli.Options{Stdout: &out, Stderr: &errb})
		require.Equal(t, cli.ExitOK, code, errb.String())
		name := "relman-" + role + "-gen-" + role + ".service"
		b, err := os.ReadFile(filepath.Join(dir, "gen-"+role, name))
		require.NoError(t, err)
		units[name] = unit{body: b, config: filepath.Join(dir, "gen-"+role, "conf", role+".yaml")}
	}
	return units
}

// TestSystemdAnalyzeVerify runs `systemd-analyze verify` on every unit, the
// checked-in ones and generate's. verify resolves ExecStart, User= and the
// units it depends on, so it runs against a temporary root (--root) that has
// them: systemd's own units copied in, the relman users made by
// `systemd-sysusers --root` from relman.sysusers, the directories made by
// `systemd-tmpfiles --root` from relman.tmpfiles, and an executable at each
// unit's ExecStart path (a copy of true(1): verify checks that the binary
// exists and is executable, not what it does). --man=no because relman's
// Documentation= is a web page, not a man page. verify exits 0 on unknown
// keys and bad values (it only warns), so any output fails the test. Then
// `systemd-analyze security --offline` scores the hardening against a
// threshold, so a setting dropped from the template fails here too.
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze := tool(t, "systemd-analyze", "install Debian's systemd package")
	root := systemdRoot(t)
	for name, u := range allUnits(t) {
		t.Run(name, func(t *testing.T) {
			settings := parseUnit(t, u.body)
			execStart := strings.Fields(settings["ExecStart"][0])[0]
			copyExecutable(t, "/usr/bin/true", filepath.Join(root, execStart))
			for _, key := range []string{"User", "Group"} {
				require.Len(t, settings[key], 1, "%s must set %s", name, key)
			}
			assert.True(t, hasEntry(t, filepath.Join(root, "etc", "passwd"), settings["User"][0]),
				"user %s is not made by relman.sysusers", settings["User"][0])
			assert.True(t, hasEntry(t, filepath.Join(root, "etc", "group"), settings["Group"][0]),
				"group %s is not made by relman.sysusers", settings["Group"][0])
			p := filepath.Join(root, "etc", "systemd", "system", name)
			require.NoError(t, os.WriteFile(p, u.body, 0o644))
			out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, "/etc/systemd/system/"+name).CombinedOutput()
			require.NoError(t, err, "systemd-analyze verify %s:\n%s", name, out)
			assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify %s warns", name)

			// systemd's own score of the hardening: exposure 0.0 (best) to 10.0,
			// as a threshold of 0 to 100.
			// The manager and codec-server also filter system calls; the
			// builder and installer run project commands, so they cannot.
			threshold := "20"
			if strings.Contains(name, "builder") || strings.Contains(name, "installer") {
				threshold = "35"
			}
			out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold="+threshold, "--root="+root, "/etc/systemd/system/"+name).CombinedOutput()
			require.NoError(t, err, "systemd-analyze security %s: exposure above %s:\n%s", name, threshold, out)
		})
	}
}

// TestUnitsAreHardened checks the settings a reviewer looks for, in every
// unit, beyond what verify knows to want.
func TestUnitsAreHardened(t *testing.T) {
	want := map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"PrivateTmp":              "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
		// relman's stop: deregistering (5 s) then WorkerStopTimeout (10 s);
		// see the template for the margin.
		"TimeoutStopSec": "30",
		"Type":           "exec",
	}
	for name, u := range allUnits(t) {
		t.Run(name, func(t *testing.T) {
			s := parseUnit(t, u.body)
			for k, v := range want {
				require.Len(t, s[k], 1, "%s must set %s once", name, k)
				assert.Equal(t, v, s[k][0], "%s: %s", name, k)
			}
			assert.Contains(t, []string{"yes", "read-only"}, s["ProtectHome"][0])
			require.Len(t, s["EnvironmentFile"], 1)
			assert.True(t, strings.HasPrefix(s["EnvironmentFile"][0], "-/"), "the environment file is optional and absolute")
		})
	}
}

// TestUnitsWriteWhatTheirConfigsNeed: each unit may write exactly the
// directories its role's config writes to (log file, work dir, gateway
// secret, a builder's file:// store, the parent of every install path), no
// fewer, or the role fails at its first write under ProtectSystem=strict,
// and no more.
func TestUnitsWriteWhatTheirConfigsNeed(t *testing.T) {
	for name, u := range allUnits(t) {
		if u.config == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			s := parseUnit(t, u.body)
			args := strings.Fields(s["ExecStart"][0])
			require.GreaterOrEqual(t, len(args), 4)
			assert.Equal(t, filepath.Base(u.config), filepath.Base(args[3]), "ExecStart runs another config")
			cfg, err := config.Load(u.config)
			require.NoError(t, err)
			assert.Equal(t, args[1], roleOf(cfg), "ExecStart runs another role than its config is for")
			var rw []string
			for _, v := range s["ReadWritePaths"] {
				rw = append(rw, strings.Fields(v)...)
			}
			needs := writes(t, cfg)
			for _, n := range needs {
				assert.True(t, under(n, rw), "%s writes %s, which is not in ReadWritePaths %v", roleOf(cfg), n, rw)
			}
			for _, p := range rw {
				used := false
				for _, n := range needs {
					used = used || under(n, []string{p})
				}
				assert.True(t, used, "ReadWritePaths has %s, which nothing in %s writes to", p, u.config)
			}
		})
	}
}

// TestTmpfilesMakeThePackagedDirectories: relman.tmpfiles makes every
// directory a packaged unit writes, owned by that unit's user.
func TestTmpfilesMakeThePackagedDirectories(t *testing.T) {
	root := systemdRoot(t)
	for _, role := range deployments.Roles {
		u := deployments.Packaged(role)
		uid := lookupID(t, filepath.Join(root, "etc", "passwd"), deployments.User(role))
		for _, p := range u.ReadWritePaths {
			fi, err := os.Stat(filepath.Join(root, p))
			require.NoError(t, err, "relman.tmpfiles does not make %s", p)
			assert.True(t, fi.IsDir())
			assert.Equal(t, uid, int(fi.Sys().(*syscall.Stat_t).Uid), "%s is not owned by %s", p, deployments.User(role))
		}
	}
}

// TestEnvironmentFileNamesRealSettings: every variable relman.env sets or
// shows is one relman or a library it uses reads.
func TestEnvironmentFileNamesRealSettings(t *testing.T) {
	known := map[string]bool{
		config.EnvAddress: true, config.EnvNamespace: true, config.EnvAPIKey: true, config.EnvTLS: true,
		config.EnvTLSCert: true, config.EnvTLSKey: true, config.EnvTLSCA: true, config.EnvTLSServerName: true,
		config.EnvEncryptionKeyFile: true,
		"AWS_ACCESS_KEY_ID":         true, "AWS_SECRET_ACCESS_KEY": true,
		"OTEL_EXPORTER_OTLP_ENDPOINT": true, "OTEL_SERVICE_NAME": true,
		// The codec-server unit's own, used on its command line.
		"RELMAN_CODEC_PORT": true, "RELMAN_UI_ORIGIN": true,
	}
	f, err := os.Open(filepath.Join("systemd", "relman.env"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "#")
		k, _, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " ,") {
			continue // prose
		}
		n++
		assert.True(t, known[k], "relman.env names %s, which nothing reads", k)
	}
	assert.Greater(t, n, 5)
	codec := parseUnit(t, mustRead(t, filepath.Join("systemd", "relman-codec-server.service")))
	for _, env := range codec["Environment"] {
		for _, kv := range strings.Fields(env) {
			k, _, _ := strings.Cut(kv, "=")
			assert.True(t, known[k], "the codec-server unit sets %s, which nothing reads", k)
		}
	}
}

// systemdRoot is a file system root for systemd's tools: systemd's own
// units, the relman users and the packaged directories.
func systemdRoot(t *testing.T) string {
	t.Helper()
	sysusers := tool(t, "systemd-sysusers", "install Debian's systemd package")
	tmpfiles := tool(t, "systemd-tmpfiles", "install Debian's systemd package")
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system", "usr/lib/systemd"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	// The targets every unit depends on (sysinit.target, ...); links kept.
	out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// Absolute, or the tools look for them inside root.
	users, err := filepath.Abs(filepath.Join("systemd", "relman.sysusers"))
	require.NoError(t, err)
	dirs, err := filepath.Abs(filepath.Join("systemd", "relman.tmpfiles"))
	require.NoError(t, err)
	out, err = exec.Command(sysusers, "--root="+root, users).CombinedOutput()
	require.NoError(t, err, "systemd-sysusers relman.sysusers:\n%s", out)
	out, err = exec.Command(tmpfiles, "--root="+root, "--create", dirs).CombinedOutput()
	require.NoError(t, err, "systemd-tmpfiles relman.tmpfiles:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-tmpfiles warns about relman.tmpfiles")
	return root
}

// parseUnit returns a unit's settings; a key set several times has several
// values, in order.
func parseUnit(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	s := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "unit line %q is not KEY=VALUE", line)
		s[k] = append(s[k], v)
	}
	require.NotEmpty(t, s["ExecStart"])
	return s
}

// writes lists the directories a role writes to, per its config.
func writes(t *testing.T, c any) []string {
	t.Helper()
	var dirs []string
	add := func(p string) {
		if p != "" {
			dirs = append(dirs, filepath.Clean(p))
		}
	}
	store := func(s string) {
		u, err := url.Parse(s)
		require.NoError(t, err)
		if u.Scheme == "file" {
			add(u.Path)
		}
	}
	switch c := c.(type) {
	case *config.Manager:
		if c.Logging.Path != "" {
			add(filepath.Dir(c.Logging.Path))
		}
		if c.Auth.SecretFile != "" {
			add(filepath.Dir(c.Auth.SecretFile))
		}
		// The order key is made on first start and its public half
		// written beside it at every start.
		add(filepath.Dir(c.OrdersKeyFile))
	case *config.Builder:
		if c.Logging.Path != "" {
			add(filepath.Dir(c.Logging.Path))
		}
		add(c.WorkDir)
		store(c.Artifacts)
	case *config.Installer:
		if c.Logging.Path != "" {
			add(filepath.Dir(c.Logging.Path))
		}
		add(c.WorkDir)
		for _, targets := range c.Environments {
			for _, b := range targets {
				if b.Path != "" {
					add(filepath.Dir(b.Path))
				}
			}
		}
	}
	return dirs
}

// under reports whether p is one of dirs or inside one.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func hasEntry(t *testing.T, file, name string) bool {
	t.Helper()
	for _, line := range strings.Split(string(mustRead(t, file)), "\n") {
		if strings.HasPrefix(line, name+":") {
			return true
		}
	}
	return false
}

func lookupID(t *testing.T, file, name string) int {
	t.Helper()
	for _, line := range strings.Split(string(mustRead(t, file)), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			require.NoError(t, err)
			return id
		}
	}
	t.Fatalf("%s has no entry %s", file, name)
	return -1
}

func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestProtectHomeFollowsTheLayout: a layout in a home directory (relman
// generate --dir ~/relman) would be hidden by ProtectHome=yes.
func TestProtectHomeFollowsTheLayout(t *testing.T) {
	cases := map[string]struct {
		dir  string
		want string
	}{
		"srv":      {"/srv/relman/web-1", "ProtectHome=yes"},
		"home":     {"/home/ops/relman/web-1", "ProtectHome=read-only"},
		"root":     {"/root/relman/web-1", "ProtectHome=read-only"},
		"homeless": {"/homework/web-1", "ProtectHome=yes"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := deployments.SystemdUnit(deployments.Unit{
				Role: "installer", Relman: "/usr/local/bin/relman", Config: c.dir + "/conf/installer.yaml",
				WorkingDirectory: c.dir, EnvironmentFile: c.dir + "/conf/installer.env",
				ReadWritePaths: []string{c.dir + "/work"},
			})
			require.NoError(t, err)
			assert.Contains(t, parseUnit(t, b)["ProtectHome"], strings.TrimPrefix(c.want, "ProtectHome="))
		})
	}
}

// TestCodecServerUnitFlags: the codec-server unit's command line is one
// the codec-server accepts.
func TestCodecServerUnitFlags(t *testing.T) {
	unit := parseUnit(t, mustRead(t, filepath.Join("systemd", "relman-codec-server.service")))
	require.Len(t, unit["ExecStart"], 1)
	argv := strings.Fields(unit["ExecStart"][0])
	require.Greater(t, len(argv), 2)
	args := argv[1:]
	for i, a := range args {
		// systemd fills these in from the environment file.
		switch a {
		case "${RELMAN_CODEC_PORT}":
			args[i] = "8081"
		case "${RELMAN_UI_ORIGIN}":
			args[i] = "http://localhost:8233"
		}
	}
	assert.Contains(t, args, "--token-file", "the codec refuses calls without a token")
	codecServerAccepts(t, args)
}

// codecServerAccepts runs args (codec-server and its flags, as a unit or a
// chart passes them) through the real CLI: every flag must be one it
// defines, so it gets as far as reading the key file, which is not here.
func codecServerAccepts(t *testing.T, args []string) {
	t.Helper()
	require.Equal(t, "codec-server", args[0])
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), args, cli.Options{Stdout: &out, Stderr: &errb,
		LookupEnv: func(string) (string, bool) { return "", false }})
	assert.NotEqual(t, cli.ExitUsage, code, "codec-server %v: %s", args[1:], errb.String())
	assert.NotContains(t, errb.String(), "unknown flag")
	assert.Contains(t, errb.String(), "encryption key file", "it parsed the flags and went on to read the keys")
}
