//go:build cluster

// Package cluster runs relman on a production-style Temporal: PostgreSQL
// and four service processes (harness/testcluster), with the artifact
// store on SeaweedFS, a real S3 server with authentication on. A manager,
// a builder and two installer hosts run as separate processes, and the
// tests kill Temporal's services under running releases.
//
// Behind the cluster build tag: `make test-cluster` runs it.
package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testcluster"
	"github.com/relman/relman/harness/testenv"
)

// The timeouts of the manager. The heartbeat timeout is 30 s: a Temporal
// service restart takes frontend and matching a few seconds to see, and a
// build must not be started again for that (issue 16).
var timeouts = config.ReleaseTimeouts{Heartbeat: 30 * time.Second, Host: 30 * time.Second, Install: 2 * time.Minute, Build: 3 * time.Minute}

var (
	env     *testenv.Env
	temp    *testcluster.Cluster
	s3      *testcluster.S3
	repo    string
	hosts   = []string{"host-a", "host-b"}
	targets = []string{"t1", "t2", "t3", "t4"}
	roles   = map[string]*testenv.Proc{}
)

// missingBucket is the bucket the refusal tests' roles are pointed at.
const missingBucket = "relman-missing"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := os.MkdirTemp("", "relman-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(root)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "cluster setup: "+err.Error())
		if env != nil {
			env.DumpLogs(os.Stderr, 6000)
		} else if temp != nil {
			for _, l := range temp.Logs() {
				b, _ := os.ReadFile(l)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				fmt.Fprintf(os.Stderr, "==== %s\n%s\n", l, b)
			}
		}
		return 1
	}
	relman, err := testenv.BuildRelman(ctx, root)
	if err != nil {
		return fail(err)
	}
	tools := testcluster.FindTools("")
	temp, err = testcluster.Start(ctx, tools, filepath.Join(root, "temporal"))
	if err != nil {
		return fail(err)
	}
	defer temp.Stop()
	s3, err = testcluster.StartS3(ctx, tools.Weed, filepath.Join(root, "seaweedfs"), "relman-artifacts")
	if err != nil {
		return fail(err)
	}
	defer s3.Stop()
	// The roles get the keys the way an operator gives them: in the
	// environment, never in a config or a URL.
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	env, err = testenv.New(filepath.Join(root, "roles"), relman, temp.Address())
	if err != nil {
		return fail(err)
	}
	defer env.Close()
	for _, l := range temp.Logs() {
		env.AddLog(l)
	}
	env.AddLog(s3.Log())
	if err := setup(ctx); err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 {
		env.DumpLogs(os.Stderr, 6000)
	}
	return code
}

// slow.sh is the build of project "slow": it says which transaction it
// builds, then takes a while (20 s), so a test can keep a service down for
// longer than a 10 s heartbeat timeout in the middle of it.
const slowScript = `#!/bin/sh
set -eu
echo "$RELMAN_TRANSACTION $$" >> "$RELMAN_WHOFILE"
sleep "${RELMAN_SLEEP:-10}"
mkdir -p out
echo "$RELMAN_COMMIT" > out/slow
`

func setup(ctx context.Context) error {
	repo = env.Path("repos", "main")
	if _, err := testenv.InitRepo(repo, map[string]string{"slow.sh": slowScript, "app.txt": "app\n"}); err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	projects := map[string]config.ProjectDef{
		"slow":    {Targets: []string{"slowout"}},
		"app":     {Targets: []string{"app"}},
		"refused": {Targets: []string{"refusedout"}},
	}
	for i, t := range targets {
		projects[fmt.Sprintf("load%d", i+1)] = config.ProjectDef{Targets: []string{t}}
	}
	if _, err := env.WriteConfig("manager.yaml", &config.Manager{
		Service:      env.Service(),
		ListenPort:   port,
		Environments: map[string]config.Environment{"test": {}, "refusing": {}},
		Projects:     projects,
		Timeouts:     timeouts,
		Auth:         config.Auth{Anonymous: true},
	}); err != nil {
		return err
	}
	src := config.Source{Git: repo}
	builds := map[string]config.BuildBehavior{
		"slow": {Source: src, Env: map[string]string{"RELMAN_WHOFILE": env.Path("who.log"), "RELMAN_SLEEP": "20"},
			Steps:   []config.Step{{Name: "slow", Run: []string{"sh", "slow.sh"}}},
			Outputs: map[string]config.Output{"slowout": {Path: "out/slow"}}},
		"app": {Source: src,
			Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
			Outputs: map[string]config.Output{"app": {Path: "app.txt"}}},
	}
	for i, t := range targets {
		builds[fmt.Sprintf("load%d", i+1)] = config.BuildBehavior{Source: src,
			Steps:   []config.Step{{Name: "build", Run: []string{"true"}}},
			Outputs: map[string]config.Output{t: {Path: "app.txt"}}}
	}
	if _, err := env.WriteConfig("builder.yaml", &config.Builder{
		Service:   env.Service(),
		Name:      "builder",
		Artifacts: s3.StoreURL(),
		WorkDir:   env.Path("builder"),
		Lease:     30 * time.Second,
		Projects:  builds,
	}); err != nil {
		return err
	}
	// The roles of the refusal tests: a builder and a host whose store URL
	// names a bucket that does not exist. Project "refused" and env
	// "refusing" are theirs alone, so no other release is planned onto
	// them.
	if _, err := env.WriteConfig("builder-nobucket.yaml", &config.Builder{
		Service:   env.Service(),
		Name:      "builder-nobucket",
		Artifacts: s3.StoreURLFor(missingBucket),
		WorkDir:   env.Path("builder-nobucket"),
		Lease:     30 * time.Second,
		Projects: map[string]config.BuildBehavior{"refused": {Source: src,
			Env:     map[string]string{"RELMAN_WHOFILE": env.Path("who.log"), "RELMAN_SLEEP": "0"},
			Steps:   []config.Step{{Name: "build", Run: []string{"sh", "slow.sh"}}},
			Outputs: map[string]config.Output{"refusedout": {Path: "out/slow"}}}},
	}); err != nil {
		return err
	}
	if _, err := env.WriteConfig("host-nobucket.yaml", &config.Installer{
		Service:   env.Service(),
		Host:      "host-nobucket",
		Trust:     env.Trust(),
		Artifacts: s3.StoreURLFor(missingBucket),
		WorkDir:   env.Path("host-nobucket", "work"),
		Lease:     30 * time.Second,
		Environments: map[string]map[string]config.InstallBehavior{"refusing": {
			"app": {Behavior: config.BehaviorCopy, Path: env.Path("host-nobucket", "app.txt"), Mode: "0644"}}},
	}); err != nil {
		return err
	}
	for _, h := range hosts {
		installs := map[string]config.InstallBehavior{}
		for _, t := range append([]string{"slowout", "app"}, targets...) {
			installs[t] = config.InstallBehavior{Behavior: config.BehaviorCopy, Path: env.Path(h, t+".txt"), Mode: "0644"}
		}
		if _, err := env.WriteConfig(h+".yaml", &config.Installer{
			Service:      env.Service(),
			Host:         h,
			Trust:        env.Trust(),
			Artifacts:    s3.StoreURL(),
			WorkDir:      env.Path(h, "work"),
			Lease:        30 * time.Second,
			Environments: map[string]map[string]config.InstallBehavior{"test": installs},
		}); err != nil {
			return err
		}
	}
	for name, role := range map[string]string{"manager": "manager", "builder": "builder", "host-a": "installer", "host-b": "installer",
		"builder-nobucket": "builder", "host-nobucket": "installer"} {
		p, err := env.StartRole(name, role, env.Path(name+".yaml"))
		if err != nil {
			return err
		}
		roles[name] = p
	}
	return env.WaitRegistered(ctx, "builder", "host-a", "host-b", "builder-nobucket", "host-nobucket")
}
