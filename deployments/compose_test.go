package deployments_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

const composeFile = "compose/compose.yaml"

// loadCompose loads a compose file with the compose specification's own
// loader: schema validation on (an unknown or misplaced key is an error),
// consistency checks on (a dependency on a missing service, an unknown
// volume), and an empty environment, so every ${VAR:-default} is the
// default.
func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	// Relative paths in the file resolve against compose/, wherever the
	// file being loaded is.
	dir, err := filepath.Abs("compose")
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(nil),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
		cli.WithLoadOptions(func(o *loader.Options) {
			o.SkipValidation = false
			o.SkipConsistencyCheck = false
		}),
	)
	require.NoError(t, err)
	return opts.LoadProject(context.Background())
}

func TestComposeLoaderRefusesMisspeltKeys(t *testing.T) {
	good := string(mustRead(t, composeFile))
	cases := map[string]string{
		"unknown service key": strings.Replace(good, "    read_only: true\n", "    read_onyl: true\n", 1),
		"unknown dependency":  strings.Replace(good, "      temporal-schema:\n        condition", "      temporal-schemas:\n        condition", 1),
		"unknown volume":      strings.Replace(good, "- repos:/var/lib/relman/repos:ro", "- repo:/var/lib/relman/repos:ro", 1),
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, good, doc, "the case did not change the file")
			p := filepath.Join(t.TempDir(), "compose.yaml")
			require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
			_, err := loadCompose(t, p)
			assert.Error(t, err)
		})
	}
}

// TestComposeStack: the stack relman dev runs, checked where it can go
// wrong without a container engine: every relman service runs the role its
// mounted config is for, and relman's loader accepts that config; the
// store is one volume for builders and installers; work and install dirs
// are writable volumes (the root file system is read-only); images build
// from the Dockerfile's stages; start order and published ports.
func TestComposeStack(t *testing.T) {
	p, err := loadCompose(t, composeFile)
	require.NoError(t, err)
	root, err := filepath.Abs("..")
	require.NoError(t, err)

	for _, name := range []string{"postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "template-repo", "manager-key", "manager", "builder", "installer-a", "installer-b"} {
		_, err := p.GetService(name)
		require.NoError(t, err, "the stack has no %s", name)
	}
	// Start order: each service waits for what it needs.
	waits := map[string]map[string]string{
		"temporal-schema": {"postgresql": types.ServiceConditionHealthy},
		"temporal":        {"temporal-schema": types.ServiceConditionCompletedSuccessfully},
		"temporal-setup":  {"temporal": types.ServiceConditionHealthy},
		"temporal-ui":     {"temporal": types.ServiceConditionHealthy},
		"manager":         {"temporal-setup": types.ServiceConditionCompletedSuccessfully, "manager-key": types.ServiceConditionCompletedSuccessfully},
		"builder":         {"temporal-setup": types.ServiceConditionCompletedSuccessfully, "template-repo": types.ServiceConditionCompletedSuccessfully},
		"installer-a":     {"temporal-setup": types.ServiceConditionCompletedSuccessfully, "manager-key": types.ServiceConditionCompletedSuccessfully},
		"installer-b":     {"temporal-setup": types.ServiceConditionCompletedSuccessfully, "manager-key": types.ServiceConditionCompletedSuccessfully},
	}
	for svc, deps := range waits {
		s, _ := p.GetService(svc)
		assert.Len(t, s.DependsOn, len(deps), "%s depends on %v", svc, s.DependsOn)
		for dep, cond := range deps {
			assert.Equal(t, cond, s.DependsOn[dep].Condition, "%s must wait for %s", svc, dep)
		}
	}
	for _, svc := range []string{"postgresql", "temporal"} {
		s, _ := p.GetService(svc)
		assert.NotNil(t, s.HealthCheck, "%s needs a health check: others wait for it", svc)
	}
	published := map[string]string{}
	for _, s := range p.Services {
		for _, port := range s.Ports {
			assert.Equal(t, "127.0.0.1", port.HostIP, "%s publishes %s beyond this machine; nothing here is authenticated", s.Name, port.Published)
			published[s.Name+":"+fmt.Sprint(port.Target)] = port.Published
		}
	}
	assert.Equal(t, map[string]string{"temporal:7233": "7233", "temporal-ui:8080": "8233", "manager:10000": "10000"}, published)

	// Images: each build is a stage of the Dockerfile in the repository.
	_, stages := parseDockerfile(t, filepath.Join("docker", "Dockerfile"))
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		assert.Equal(t, root, s.Build.Context, "%s builds from the repository root", s.Name)
		assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
		findStage(t, stages, s.Build.Target)
	}
	tpl, _ := p.GetService("template-repo")
	assert.Equal(t, "relman-builder", tpl.Build.Target, "git runs in the builder image")
	keySvc, _ := p.GetService("manager-key")
	assert.Equal(t, "relman-builder", keySvc.Build.Target, "manager-key needs a shell to write the public key")
	// What manager-key mounts, by target: the manager's work volume (the
	// private key) and the volume it publishes the public key in.
	keyMounts := map[string]types.ServiceVolumeConfig{}
	for _, v := range keySvc.Volumes {
		keyMounts[v.Target] = v
	}
	var managerKeyDir string // the volume holding the manager's orders.key
	var trustFiles []string  // the installers' trust files, as volume:file

	stores := map[string]string{}
	hosts := map[string]bool{}
	for _, name := range []string{"manager", "builder", "installer-a", "installer-b"} {
		t.Run(name, func(t *testing.T) {
			s, _ := p.GetService(name)
			require.GreaterOrEqual(t, len(s.Command), 3)
			role := s.Command[0]
			assert.Equal(t, "--config", s.Command[1])
			var cfgFile string
			for _, c := range s.Configs {
				if c.Target == s.Command[2] {
					cfgFile = p.Configs[c.Source].File
				}
			}
			require.NotEmpty(t, cfgFile, "%s: --config %s is not a mounted config", name, s.Command[2])
			cfg, err := config.Load(cfgFile)
			require.NoError(t, err, "%s mounts a config relman refuses", name)
			assert.Equal(t, role, roleOf(cfg), "%s runs %s with another role's config", name, role)
			assert.Equal(t, "temporal:7233", deref(s.Environment["TEMPORAL_ADDRESS"]))
			assert.True(t, s.ReadOnly, "%s runs with a read-only root file system", name)
			assert.Empty(t, serviceOf(cfg).Logging.Path, "containers log to stderr")

			mounts := map[string]types.ServiceVolumeConfig{}
			for _, v := range s.Volumes {
				mounts[v.Target] = v
			}
			mountOf := func(dir string) (types.ServiceVolumeConfig, bool) {
				for d := filepath.Clean(dir); d != "/"; d = filepath.Dir(d) {
					if m, ok := mounts[d]; ok {
						return m, true
					}
				}
				return types.ServiceVolumeConfig{}, false
			}
			writable := func(dir string) {
				m, ok := mountOf(dir)
				if assert.True(t, ok, "%s writes %s, which is not a volume", name, dir) {
					assert.False(t, m.ReadOnly, "%s writes %s, which is mounted read-only", name, dir)
				}
			}
			switch cfg := cfg.(type) {
			case *config.Manager:
				assert.Equal(t, "0.0.0.0", cfg.ListenAddress, "the gateway serves the published port")
				assert.Equal(t, "10000", fmt.Sprint(cfg.ListenPort))
				// Closed-transaction records: the store and the key.
				u, err := url.Parse(cfg.Artifacts)
				require.NoError(t, err)
				writable(u.Path)
				m, _ := mountOf(u.Path)
				stores[name] = m.Source
				writable(filepath.Dir(cfg.RecordsKeyFile))
				// The order key: in a volume only the manager and
				// manager-key mount, which makes it with the same config.
				writable(filepath.Dir(cfg.OrdersKeyFile))
				m, _ = mountOf(filepath.Dir(cfg.OrdersKeyFile))
				managerKeyDir = m.Source
				km, ok := keyMounts[m.Target]
				if assert.True(t, ok, "manager-key does not mount the manager's %s", m.Target) {
					assert.Equal(t, m.Source, km.Source)
					assert.False(t, km.ReadOnly, "manager-key makes the key on the first up")
				}
				require.NotEmpty(t, keySvc.Command)
				assert.Contains(t, keySvc.Command[len(keySvc.Command)-1], "relman manager-key --config "+s.Command[2])
			case *config.Builder:
				writable(cfg.WorkDir)
				u, err := url.Parse(cfg.Artifacts)
				require.NoError(t, err)
				writable(u.Path)
				m, _ := mountOf(u.Path)
				stores[name] = m.Source
				src, ok := mountOf(cfg.Projects["template"].Source.Git)
				require.True(t, ok, "the template repository is not mounted")
				shared := false
				for _, v := range tpl.Volumes {
					shared = shared || (v.Source == src.Source && !v.ReadOnly)
				}
				assert.True(t, shared, "template-repo must write the repository the builder reads")
			case *config.Installer:
				assert.False(t, hosts[cfg.Host], "two installers register as %s", cfg.Host)
				hosts[cfg.Host] = true
				writable(cfg.WorkDir)
				for _, targets := range cfg.Environments {
					for _, b := range targets {
						writable(filepath.Dir(b.Path))
					}
				}
				u, err := url.Parse(cfg.Artifacts)
				require.NoError(t, err)
				m, ok := mountOf(u.Path)
				require.True(t, ok, "the store is not mounted")
				stores[name] = m.Source
				// Signed orders: the manager's public key, from the volume
				// manager-key writes, read-only.
				require.NotEmpty(t, cfg.Trust.ManagerKeyFiles, "the installer trusts no manager key file")
				for _, f := range cfg.Trust.ManagerKeyFiles {
					m, ok := mountOf(filepath.Dir(f))
					if assert.True(t, ok, "trust file %s is not mounted", f) {
						assert.True(t, m.ReadOnly, "%s mounts the manager's key volume writable", name)
						km, ok := keyMounts[m.Target]
						if assert.True(t, ok, "manager-key does not write %s", m.Target) {
							assert.Equal(t, m.Source, km.Source)
							assert.False(t, km.ReadOnly)
						}
						trustFiles = append(trustFiles, m.Source+":"+filepath.Base(f))
					}
				}
				for _, v := range s.Volumes {
					assert.NotEqual(t, "manager-work", v.Source, "%s mounts the manager's private key", name)
				}
			}
		})
	}
	assert.Equal(t, map[string]string{"manager": "artifacts", "builder": "artifacts", "installer-a": "artifacts", "installer-b": "artifacts"}, stores,
		"builders and installers must share one store, and the manager keeps its records there")
	assert.Equal(t, "manager-work", managerKeyDir)
	assert.Equal(t, []string{"manager-key:orders.key.pub", "manager-key:orders.key.pub"}, trustFiles)
	assert.Contains(t, keySvc.Command[len(keySvc.Command)-1], "/var/lib/relman/manager-key/orders.key.pub", "manager-key writes the file the installers trust")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestComposeTemporalSetup: the setup script is valid sh and creates every
// search attribute relman sets; the dynamic config is Temporal's format.
func TestComposeTemporalSetup(t *testing.T) {
	script := filepath.Join("compose", "setup-temporal.sh")
	out, err := exec.Command("sh", "-n", script).CombinedOutput()
	require.NoError(t, err, "%s", out)
	body := string(mustRead(t, script))
	for _, sa := range []string{workflows.SAProject, workflows.SAEnv, workflows.SAStatus, workflows.SARequester} {
		assert.Regexp(t, `for sa in [^;]*\b`+sa+`\b`, body, "setup-temporal.sh does not create %s", sa)
	}
	var dc map[string][]struct {
		Value       any            `yaml:"value"`
		Constraints map[string]any `yaml:"constraints"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(mustRead(t, filepath.Join("compose", "dynamicconfig.yaml")))))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&dc))
	assert.NotEmpty(t, dc)
	for k, vs := range dc {
		assert.NotEmpty(t, vs, "%s has no value", k)
	}
}
