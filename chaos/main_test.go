// Package chaos breaks a running relman on purpose, with real processes:
// builders, installers, managers and the Temporal server are killed with
// SIGKILL (or stopped and restarted) in the middle of releases, and the tests
// check what survives. The shared stack (an in-memory dev server, a manager,
// two builders and three installer hosts, all separate OS processes) is
// started once in TestMain; a test that kills a shared process starts it
// again before it ends, so later tests find the stack whole.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
)

// Timeouts of the chaos manager: small, so a lost worker is noticed fast.
var chaosTimeouts = config.ReleaseTimeouts{Heartbeat: 3 * time.Second, Host: 8 * time.Second, Install: time.Minute, Build: 2 * time.Minute}

// sharedLease is the lease of the shared builders and hosts: long enough to
// ride out a manager restart, short enough to renew often.
const sharedLease = 20 * time.Second

var (
	env      *testenv.Env
	temporal string // the temporal CLI
	repo     string // the git repository every project builds from
	procs    = map[string]*testenv.Proc{}
	// hostRoot is where each installer host installs: <root>/<host>.
	sharedHosts = []string{"host-a", "host-b", "host-c"}
	loadTargets = []string{"l1", "l2", "l3", "l4"}
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.Main(m, testenv.MainOptions{
		Name:      "chaos",
		SkipShort: true,
		Setup: func(ctx context.Context, e *testenv.Env) error {
			env, temporal = e, e.Temporal
			return setup(ctx)
		},
	}))
}

// The scripts of the shared repository. gen-big.sh writes 3000 files of
// random bytes (81 MB) plus a marker and a file only this version has, so
// extracting it takes long enough to kill an installer in the middle.
var repoFiles = map[string]string{
	"gen-big.sh": `#!/bin/sh
set -eu
rm -rf out && mkdir -p out/big
mark=$(cat MARK)
echo "$mark" > out/big/marker
echo "$mark" > "out/big/only-$mark"
head -c 81000000 /dev/urandom > out/blob.bin
split -b 27000 -a 4 -d out/blob.bin out/big/f
rm out/blob.bin
`,
	"slow.sh": `#!/bin/sh
set -eu
echo "$RELMAN_WHO $RELMAN_TRANSACTION $$" >> "$RELMAN_WHOFILE"
sleep "${RELMAN_SLEEP:-6}"
mkdir -p out
echo "$RELMAN_COMMIT" > out/slow
`,
	"MARK":        "v0\n",
	"edge.txt":    "edge\n",
	"payload.txt": "payload 0\n",
	"load.txt":    "load\n",
}

func setup(ctx context.Context) error {
	repo = env.Path("repos", "main")
	if _, err := testenv.InitRepo(repo, repoFiles); err != nil {
		return err
	}
	if err := writeManager("manager-1"); err != nil {
		return err
	}
	if err := writeManager("manager-2"); err != nil {
		return err
	}
	for _, b := range []string{"builder-1", "builder-2"} {
		if _, err := env.WriteConfig(b+".yaml", builderConfig(b)); err != nil {
			return err
		}
	}
	for _, h := range sharedHosts {
		targets := map[string]config.InstallBehavior{}
		for _, t := range append([]string{"slowout", "shop", "edge", "blob"}, loadTargets...) {
			targets[t] = copyTo(env.Path(h, t+".txt"))
		}
		if _, err := env.WriteConfig(h+".yaml", installerConfig(h, sharedLease, targets)); err != nil {
			return err
		}
	}
	for _, name := range []string{"manager-1", "builder-1", "builder-2", "host-a", "host-b", "host-c"} {
		if _, err := startShared(name); err != nil {
			return err
		}
	}
	return env.WaitRegistered(ctx, "builder-1", "builder-2", "host-a", "host-b", "host-c")
}

// startShared starts (or starts again) one of the shared role processes.
func startShared(name string) (*testenv.Proc, error) {
	role := "installer"
	switch name[:len(name)-2] {
	case "manager":
		role = "manager"
	case "builder":
		role = "builder"
	}
	p, err := env.StartRole(name, role, env.Path(name+".yaml"))
	if err != nil {
		return nil, err
	}
	procs[name] = p
	return p, nil
}

func writeManager(name string) error {
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	projects := map[string]config.ProjectDef{
		"slow":    {Targets: []string{"slowout"}},
		"big":     {Targets: []string{"big"}},
		"shop":    {Targets: []string{"shop"}},
		"edge":    {Targets: []string{"edge"}},
		"corrupt": {Targets: []string{"blob"}},
	}
	for i, t := range loadTargets {
		projects[fmt.Sprintf("load%d", i+1)] = config.ProjectDef{Targets: []string{t}}
	}
	_, err = env.WriteConfig(name+".yaml", &config.Manager{
		Service:      env.Service(),
		ListenPort:   port,
		Environments: map[string]config.Environment{"test": {}},
		Projects:     projects,
		Timeouts:     chaosTimeouts,
		Auth:         config.Auth{Anonymous: true},
	})
	return err
}

func builderConfig(name string) *config.Builder {
	src := config.Source{Git: repo}
	who := map[string]string{"RELMAN_WHO": name, "RELMAN_WHOFILE": env.Path("who.log")}
	projects := map[string]config.BuildBehavior{
		"slow": {Source: src, Env: who,
			Steps:   []config.Step{{Name: "slow", Run: []string{"sh", "slow.sh"}}},
			Outputs: map[string]config.Output{"slowout": {Path: "out/slow"}}},
		"big": {Source: src,
			Steps:   []config.Step{{Name: "generate", Run: []string{"sh", "gen-big.sh"}}},
			Outputs: map[string]config.Output{"big": {Path: "out/big"}}},
		"shop": {Source: src, Env: map[string]string{"RELMAN_WHO": name, "RELMAN_WHOFILE": env.Path("who-shop.log"), "RELMAN_SLEEP": "2"},
			Steps:   []config.Step{{Name: "build", Run: []string{"sh", "slow.sh"}}},
			Outputs: map[string]config.Output{"shop": {Path: "out/slow"}}},
		"edge": {Source: src,
			Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
			Outputs: map[string]config.Output{"edge": {Path: "edge.txt"}}},
		"corrupt": {Source: src,
			Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
			Outputs: map[string]config.Output{"blob": {Path: "payload.txt"}}},
	}
	for i, t := range loadTargets {
		projects[fmt.Sprintf("load%d", i+1)] = config.BuildBehavior{Source: src,
			Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
			Outputs: map[string]config.Output{t: {Path: "load.txt"}}}
	}
	return &config.Builder{
		Service:   env.Service(),
		Name:      name,
		Artifacts: "file://" + env.Path("artifacts"),
		WorkDir:   env.Path(name),
		// Builders sharing a store share the key of its build records.
		SigningKeyFile: env.Path("build-signing.key"),
		Lease:          sharedLease,
		Projects:       projects,
	}
}

func installerConfig(host string, lease time.Duration, targets map[string]config.InstallBehavior) *config.Installer {
	return &config.Installer{
		Service:      env.Service(),
		Host:         host,
		Trust:        env.Trust(),
		Artifacts:    "file://" + env.Path("artifacts"),
		WorkDir:      env.Path(host, "work"),
		Lease:        lease,
		Environments: map[string]map[string]config.InstallBehavior{"test": targets},
	}
}

func copyTo(path string) config.InstallBehavior {
	return config.InstallBehavior{Behavior: config.BehaviorCopy, Path: path, Mode: "0644"}
}
