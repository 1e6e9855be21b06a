package cli

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/deployments"
	"github.com/relman/relman/examples"
	"github.com/relman/relman/internal/secretfile"
)

// layouts are the directories `relman generate` makes per role, after the
// seed's relman_ctl layouts. Every role generated into one directory shares
// sharedStore beside them: builders write it, installers read it.
var layouts = map[string][]string{
	"manager":   {"conf", "log", "work"},
	"builder":   {"conf", "log", "work", "checkout", "../" + sharedStore},
	"installer": {"conf", "log", "work", "install_base/dev", "install_base/qa", "install_base/test", "install_base/prod", "../" + sharedStore},
}

// sharedStore is the file:// artifact store of the roles generated into one
// directory, in that directory.
const sharedStore = "artifacts"

// unitWritable are the layout directories a role's systemd unit may write:
// everything else is read-only to it (ProtectSystem=strict).
var unitWritable = map[string][]string{
	"manager":   {"log", "work"},
	"builder":   {"log", "work", "../" + sharedStore},
	"installer": {"log", "work", "install_base"},
}

// exampleCheckout is where a generated builder finds the example project its
// config builds.
const exampleCheckout = "checkout/template"

func (a *app) generateCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "generate manager|builder|installer NAME",
		Short: "Make a ready-to-run layout for a manager, builder or installer (the seed's relman_ctl generate)",
		Long: `Make NAME/ under --dir with a README, conf/<role>.yaml (a commented example
config), log/ and work/ (a builder also gets checkout/ holding the example
project as a git repository, an installer install_base/<env>/), and a
systemd unit. Roles generated into the same --dir work together as they are:
builders write the artifact store --dir/artifacts, installers read it, and
the example project releases to test once the manager's README steps are
done. A manager gets its order-signing key (work/orders.key); an installer
trusts the keys of the managers generated into --dir before it (its
trust.manager_keys), so generate the manager first. Existing files are
never overwritten: they are kept and listed.`,
		Example: `  relman generate manager mgr --dir /srv/relman
  relman generate builder build-1 --dir /srv/relman
  relman generate installer web-1 --dir /srv/relman
  relman installer --config /srv/relman/web-1/conf/installer.yaml`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			role, name := args[0], args[1]
			dirs, ok := layouts[role]
			if !ok {
				return usageErr("unknown role %q; generate manager, builder or installer", role)
			}
			if !config.ValidName(name) {
				return usageErr("name %q must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", name)
			}
			if name == sharedStore {
				return usageErr("name %q is the artifact store the roles of --dir share; choose another name", name)
			}
			parent, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			root := filepath.Join(parent, name)
			for _, d := range dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					return err
				}
			}
			relman, _ := os.Executable()
			data := map[string]any{"Role": role, "Name": name, "Root": root, "Dir": parent, "Relman": relman, "Store": sharedStore}
			var managers []generatedManager
			if role == "installer" {
				// The installer runs only orders its managers sign: it
				// trusts the managers generated beside it from the start.
				managers = a.generatedManagers(parent)
				data["Managers"] = managers
			}
			// The unit comes from the same template as the units under
			// deployments/systemd, so both get the same hardening.
			u := deployments.Unit{
				Role: role, Name: name, Relman: relman,
				Config:           filepath.Join(root, "conf", role+".yaml"),
				WorkingDirectory: root,
				EnvironmentFile:  filepath.Join(root, "conf", role+".env"),
			}
			for _, d := range unitWritable[role] {
				u.ReadWritePaths = append(u.ReadWritePaths, filepath.Join(root, d))
			}
			unit, err := deployments.SystemdUnit(u)
			if err != nil {
				return err
			}
			unitFile := "relman-" + role + "-" + name + ".service"
			files := map[string]string{
				"README.md":              generateReadme,
				"conf/" + role + ".yaml": generateConfigs[role],
			}
			var kept []string
			for _, rel := range append(slices.Sorted(maps.Keys(files)), unitFile) {
				p := filepath.Join(root, rel)
				var buf bytes.Buffer
				if rel == unitFile {
					buf.Write(unit)
				} else if err := template.Must(template.New(rel).Parse(files[rel])).Execute(&buf, data); err != nil {
					return err
				}
				mode := os.FileMode(0o644)
				if strings.HasPrefix(rel, "conf/") {
					// A config is where an API key, a TLS key path or an
					// svn password goes: owner only from the start.
					mode = secretfile.Mode
				}
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
				if errors.Is(err, fs.ErrExist) {
					kept = append(kept, rel)
					continue
				}
				if err != nil {
					return err
				}
				if _, err := f.Write(buf.Bytes()); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(a.opts.Stdout, "%s %s in %s\n", role, name, root)
			for _, k := range kept {
				fmt.Fprintf(a.opts.Stdout, "kept existing %s\n", k)
			}
			if role == "manager" {
				// The key the manager signs install orders with, made now
				// (as its first start would) so that installers generated
				// beside it can trust its public half from the start.
				cfgPath := filepath.Join(root, "conf", "manager.yaml")
				key, keyFile, err := a.managerOrderKey(cfgPath)
				if err != nil {
					fmt.Fprintf(a.opts.Stderr, "Warning: the manager's order key: %v; relman manager-key --config %s makes it\n", err, cfgPath)
				} else {
					rel, _ := filepath.Rel(root, keyFile)
					fmt.Fprintf(a.opts.Stdout, "install orders are signed with %s (it stays on this machine); installers trust its public key %s\n", rel, key)
				}
			}
			if role == "installer" {
				for _, m := range managers {
					fmt.Fprintf(a.opts.Stdout, "trusts the install orders of manager %s (its key is in conf/installer.yaml, trust.manager_keys)\n", m.Name)
				}
				if len(managers) == 0 {
					fmt.Fprintf(a.opts.Stdout, "trusts no manager yet: no manager generated in %s has an order key; put your manager's key (relman manager-key --config manager.yaml prints it) in trust.manager_keys of conf/installer.yaml before starting\n", parent)
				}
			}
			if role == "builder" {
				// The example project as a repository, so the first release
				// has something to build; a repository there is kept.
				if err := examples.MakeRepo(cmd.Context(), filepath.Join(root, exampleCheckout)); err != nil {
					return fmt.Errorf("the example project in %s: %w; install git, or point source.git in conf/builder.yaml at your own repository", exampleCheckout, err)
				}
				fmt.Fprintf(a.opts.Stdout, "the example project: %s (a git repository)\n", exampleCheckout)
			}
			if role != "manager" {
				fmt.Fprintf(a.opts.Stdout, "artifact store: %s, shared with the roles generated into %s\n", filepath.Join(parent, sharedStore), parent)
			}
			fmt.Fprintf(a.opts.Stdout, "next: see %s\n", filepath.Join(root, "README.md"))
			fmt.Fprintf(a.opts.Stdout, "start it: relman %s --config %s\n", role, filepath.Join(root, "conf", role+".yaml"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "where to make the NAME directory; generate every role of one setup into the same one")
	return cmd
}

// generatedManager is a manager generated into the same --dir as an
// installer, and its order key's public half (base64).
type generatedManager struct {
	Name, Key string
}

// generatedManagers are the managers generated into parent, by name, with
// their order keys. A manager without a key yet (generated by an older
// relman and never started) or whose config does not load is left out,
// with a warning: generating an installer writes nothing into another
// role's layout.
func (a *app) generatedManagers(parent string) []generatedManager {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var out []generatedManager
	for _, e := range entries {
		cfgPath := filepath.Join(parent, e.Name(), "conf", "manager.yaml")
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(cfgPath); err != nil {
			continue
		}
		cfg, err := config.LoadManager(cfgPath)
		if cfg == nil {
			fmt.Fprintf(a.opts.Stderr, "Warning: not trusting manager %s: %v\n", e.Name(), err)
			continue
		}
		if _, err := os.Stat(cfg.OrdersKeyFile); err != nil {
			fmt.Fprintf(a.opts.Stderr, "Warning: not trusting manager %s: it has no order key yet (%s); start it once or run relman manager-key --config %s, then add what that prints to trust.manager_keys\n", e.Name(), cfg.OrdersKeyFile, cfgPath)
			continue
		}
		key, _, err := a.managerOrderKey(cfgPath)
		if err != nil {
			fmt.Fprintf(a.opts.Stderr, "Warning: not trusting manager %s: %v\n", e.Name(), err)
			continue
		}
		out = append(out, generatedManager{Name: e.Name(), Key: key})
	}
	return out
}

// managerOrderKey is the public key (base64) the manager of cfgPath signs
// install orders with, and its key file; the key is made, owner-only, if
// it is not there yet.
func (a *app) managerOrderKey(cfgPath string) (string, string, error) {
	cfg, err := config.LoadManager(cfgPath)
	if cfg == nil {
		return "", "", err
	}
	key, err := auth.LoadOrderKey(cfg.OrdersKeyFile, a.warnSecret)
	if err != nil {
		return "", "", err
	}
	return auth.EncodeManagerKey(key.Public().(ed25519.PublicKey)), cfg.OrdersKeyFile, nil
}

const generateReadme = `# {{.Name}}: a relman {{.Role}}

Made by ` + "`relman generate {{.Role}} {{.Name}}`" + ` in {{.Dir}}. Generate a manager, a
builder and an installer into that same directory and they work together as
they are. The commands below run in this directory.

- ` + "`conf/{{.Role}}.yaml`" + `: the config; paths in it are relative to conf/.
  Check it with ` + "`relman config check conf/{{.Role}}.yaml`" + `.
- ` + "`log/`" + `: the log file (logging.path).
- ` + "`work/`" + `: scratch space.
{{- if eq .Role "manager"}}
- ` + "`work/orders.key`" + `: the key this manager signs install orders with
  (ed25519, made by relman generate, owner-only). Installers run only orders
  signed with it, so it stays on this machine: never copy it elsewhere, back
  it up with the other secrets. Its public half, printed by
  ` + "`relman manager-key --config conf/manager.yaml`" + ` and written to
  work/orders.key.pub at each start, goes in every installer's
  trust.manager_keys; the installers generated beside this manager already
  have it.
- ` + "`conf/users.yaml`" + `: the users and their tokens (made by the first
  ` + "`relman token create`" + ` or ` + "`relman user add`" + `).
{{- end}}
{{- if eq .Role "builder"}}
- ` + "`checkout/template/`" + `: the example project as a git repository; the
  config builds it. Point source.git at your own repositories.
- ` + "`../{{.Store}}/`" + `: the artifact store (file://) this builder writes and
  the installers generated beside it read. On several machines use a shared
  mount or s3:// (artifacts: in every builder's and installer's config).
{{- end}}
{{- if eq .Role "installer"}}
- ` + "`install_base/<env>/`" + `: where named targets are installed.
- ` + "`../{{.Store}}/`" + `: the artifact store the builders generated beside it
  write (artifacts: in conf/installer.yaml).
- trust.manager_keys in conf/installer.yaml: the public keys of the managers
  whose install orders this host runs{{range $i, $m := .Managers}}{{if $i}},{{else}}:{{end}} manager {{$m.Name}}{{end}}
  {{- if .Managers}} (generated beside it){{else}}. No manager with an order
  key was generated beside it: add your manager's key, as
  ` + "`relman manager-key --config manager.yaml`" + ` prints it, before starting{{end}}.
  Any other order is refused before anything is downloaded.
{{- end}}
- ` + "`relman-{{.Role}}-{{.Name}}.service`" + `: a hardened systemd unit running as
  the user relman-{{.Role}} (group relman), which may write only log/, work/
{{- if eq .Role "builder"}} and ../{{.Store}}/{{end}}{{if eq .Role "installer"}} and install_base/{{end}}.
  Make the user (deployments/systemd/relman.sysusers), give it those
  directories (` + "`chown -R relman-{{.Role}}:relman ...`" + `), put TEMPORAL_* settings
  and secrets in conf/{{.Role}}.env, copy the unit to /etc/systemd/system and
  ` + "`systemctl enable --now relman-{{.Role}}-{{.Name}}`" + `.

## Start it

The {{.Role}} talks to Temporal: TEMPORAL_ADDRESS or --address says where
(default localhost:7233; for a try on one machine, ` + "`temporal server start-dev`" + `).
Prepare the namespace once (relman's search attributes; the manager refuses
to start without them): ` + "`relman namespace prepare`" + ` with the same TEMPORAL_*
settings. On Temporal Cloud it prints the tcld command that does it.
Started while Temporal is away, it warns and serves once Temporal comes.
{{- if eq .Role "manager"}}

1. A user who may release, and their token (the policy in conf/manager.yaml
   lets role deployer release anything):

       relman token create deployer --users-file conf/users.yaml --roles deployer > conf/deployer.token

2. The XML-RPC gateway listens on 127.0.0.1:10000 (listen_port). If another
   manager or relman dev on this machine has that port, set listen_port in
   conf/manager.yaml to a free one, or turn the gateway off with
   ` + "`gateway: {off: true}`" + `.

3. Start the manager here, and the builder and the installer generated
   beside it from their directories (their READMEs say how):

       relman manager --config conf/manager.yaml

4. Release the example project to test and wait for INSTALL_COMPLETED:

       relman release template --env test --wait --token-file conf/deployer.token
{{- else}}

    relman {{.Role}} --config conf/{{.Role}}.yaml

It registers with the manager on relman-manager (manager_queue and
registry_id in the config; list several under managers to serve more than
one).
{{- end}}
`

var generateConfigs = map[string]string{
	"manager": `# relman manager {{.Name}}. Run: relman manager --config conf/manager.yaml
version: 1
temporal:
  address: localhost:7233     # or TEMPORAL_ADDRESS / --address
  namespace: default
logging:
  path: ../log/manager.log
  level: info                 # debug, info, warn, error
listen_port: 10000            # the XML-RPC gateway (the seed's listen_port)
# Who may ask. Add users with
#   relman user add NAME --users-file conf/users.yaml --roles deployer
#   relman token create NAME --users-file conf/users.yaml
# Nothing is allowed unless a policy rule allows it.
auth:
  users_file: users.yaml
  # The gateway's signing secret, made on first start where the unit may
  # write; managers sharing a queue need the same file.
  secret_file: ../work/gateway.secret
policy:
  - roles: [deployer]
    actions: [build, install, cancel, approve, read]
    projects: ["*"]
    environments: ["*"]
# Environments releases go to.
environments:
  dev: {}
  qa: {}
  test: {}
  prod: {}
# Projects and their named targets. Builders build projects; installers
# advertise named targets per environment.
projects:
  template:
    description: an example project
    targets: [template]
timeouts:
  build: 1h
  install: 30m
  host: 5m                    # an install not picked up by its host in time fails that host
# Closed-transaction records: every transaction's detail and timeline,
# signed, in the builders' store when it ends, so status, history, list and
# install --from still answer after Temporal's retention deleted it. The key
# is made on first start; managers sharing a queue need the same file.
artifacts: file://../../{{.Store}}
records_key_file: ../work/records.key
# Installers run only install orders signed with this key (ed25519). relman
# generate made it, owner-only; it stays on this machine. Its public half
# (relman manager-key --config conf/manager.yaml; also written to
# orders.key.pub beside it at each start) is in the trust section of the
# installers generated beside this manager.
orders_key_file: ../work/orders.key
# The manager warns at start when the namespace keeps closed workflows less.
min_retention: 720h           # 30 days
`,
	"builder": `# relman builder {{.Name}}. Run: relman builder --config conf/builder.yaml
version: 1
name: {{.Name}}
temporal:
  address: localhost:7233
logging:
  path: ../log/builder.log
  level: info
artifacts: file://../../{{.Store}}   # shared with the installers generated beside it
work_dir: ../work
lease: 60s                    # registration renewed every lease/3
projects:
  template:
    source:
      git: ../checkout/template   # a path or URL; or svn: URL with trunk/branches/tags
    steps:
      - name: build
        run: [sh, build.sh]       # an argv, no shell added
        timeout: 10m
    outputs:
      template:
        path: dist                # a directory becomes a tar.gz; a file stays a file
`,
	"installer": `# relman installer {{.Name}}. Run: relman installer --config conf/installer.yaml
version: 1
host: {{.Name}}
temporal:
  address: localhost:7233
logging:
  path: ../log/installer.log
  level: info
artifacts: file://../../{{.Store}}   # the store the builders generated beside it write
work_dir: ../work
lease: 60s
# environment -> named target -> install behavior and path
environments:
  test:
    template:
      behavior: unarchive       # unarchive, copy, command, or your own
      path: ../install_base/test/template
  dev:
    template:
      behavior: unarchive
      path: ../install_base/dev/template
# Whose install orders this host runs: only orders signed by one of these
# managers' keys, for this host, its environment and target, the artifact's
# sha256 and the transaction, unexpired, once. Anything else is refused
# before any download. No setting runs unsigned orders.
# Rotating a manager's key: add the new key here (relman manager-key with
# the manager's new orders_key_file prints it), restart the installers, then
# switch the manager to the new key and restart it; remove the old key here
# once the manager runs with the new one.
trust:
{{- if .Managers}}
  manager_keys:
{{- range .Managers}}
    # manager {{.Name}}, generated beside this installer: the public half of
    # its work/orders.key, as relman manager-key --config
    # ../../{{.Name}}/conf/manager.yaml prints it.
    - {{.Key}}
{{- end}}
{{- else}}
  # No manager with an order key was generated beside this installer: add
  # your manager's key as relman manager-key --config manager.yaml prints it
  # on the manager's machine. The installer refuses to start without one.
  manager_keys: []
{{- end}}
`,
}
