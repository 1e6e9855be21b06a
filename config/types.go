// Package config reads relman's YAML configuration files: one per role
// (manager, builder, installer). Files are decoded strictly, versioned,
// defaulted, and validated in one pass that reports every problem at once.
package config

import (
	"time"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/auth/ldap"
	"github.com/relman/relman/rollout"
)

// Temporal is the connection to the Temporal service, spelled as the Temporal
// CLI spells its options. Flags override the environment, which overrides the
// file.
type Temporal struct {
	Address       string `yaml:"address"`
	Namespace     string `yaml:"namespace"`
	APIKey        string `yaml:"api_key"`
	TLS           bool   `yaml:"tls"`
	TLSCertPath   string `yaml:"tls_cert_path"`
	TLSKeyPath    string `yaml:"tls_key_path"`
	TLSCACertPath string `yaml:"tls_ca_path"`
	TLSServerName string `yaml:"tls_server_name"`
	// EncryptionKeyFile turns on payload encryption (AES-256-GCM): every
	// relman client and worker of one namespace needs the same file.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
}

// Logging is the seed's logging_path and logging_level.
type Logging struct {
	// Path is a log file; empty means stderr.
	Path  string `yaml:"path"`
	Level string `yaml:"level"` // debug, info, warn, error
}

// Service holds what every role has.
type Service struct {
	Version  int      `yaml:"version"`
	Temporal Temporal `yaml:"temporal"`
	Logging  Logging  `yaml:"logging"`
	// ManagerQueue and RegistryID name the manager this process serves or
	// registers with.
	ManagerQueue string `yaml:"manager_queue"`
	RegistryID   string `yaml:"registry_id"`
	// StatusAddress is host:port where the role answers /livez and
	// /readyz for supervisors and probes (Kubernetes, load balancers);
	// empty: not served.
	StatusAddress string `yaml:"status_address"`
}

// Manager is manager.yaml.
type Manager struct {
	Service `yaml:",inline"`
	// ListenPort is the XML-RPC gateway's port (the seed's listen_port).
	ListenPort int `yaml:"listen_port"`
	// ListenAddress is the interface the gateway listens on; default
	// 127.0.0.1. Set 0.0.0.0 (or a host's address) to serve other machines.
	ListenAddress string `yaml:"listen_address"`
	// Gateway holds the rest of the gateway's settings: TLS, or none.
	Gateway      Gateway                `yaml:"gateway"`
	Environments map[string]Environment `yaml:"environments"`
	Projects     map[string]ProjectDef  `yaml:"projects"`
	Timeouts     ReleaseTimeouts        `yaml:"timeouts"`
	// Auth says who may ask; Policy what they may ask for.
	Auth   Auth        `yaml:"auth"`
	Policy auth.Policy `yaml:"policy"`
	// Artifacts is the artifact store (file://DIR, s3://BUCKET?...) the
	// manager writes a signed record of every closed transaction to, so
	// that status, history, list and install --from still answer after
	// Temporal's retention deleted it; install --from also checks there
	// that the build is still stored. Empty: no records (said at start).
	Artifacts string `yaml:"artifacts"`
	// RecordsKeyFile holds the secret the manager signs its records with,
	// made on first start; managers on one queue share it. Default:
	// records.key beside this config.
	RecordsKeyFile string `yaml:"records_key_file"`
	// OrdersKeyFile holds the seed of the ed25519 key the manager signs
	// install orders with, made owner-only on first start; installers
	// trust its public key (relman manager-key). Default: orders.key
	// beside this config.
	OrdersKeyFile string `yaml:"orders_key_file"`
	// MinRetention is the shortest namespace retention the manager takes
	// without a warning at start. Default 720h (30 days).
	MinRetention time.Duration `yaml:"min_retention"`
	path         string
}

// Gateway is how the XML-RPC gateway serves, beside listen_address and
// listen_port. Credentials cross it, so off loopback it serves TLS unless
// insecure says, in so many words, that plain HTTP is wanted.
type Gateway struct {
	// Off: no gateway (a second manager on one machine, say).
	Off         bool   `yaml:"off"`
	TLSCertPath string `yaml:"tls_cert_path"`
	TLSKeyPath  string `yaml:"tls_key_path"`
	// Insecure allows plain HTTP on an address other than loopback.
	Insecure bool `yaml:"insecure"`
}

// TLS reports whether the gateway serves HTTPS.
func (g Gateway) TLS() bool { return g.TLSCertPath != "" }

// Auth configures authentication. With users_file or realms set, every
// request must be signed with a user's token (CLI) or come through the
// XML-RPC gateway with credentials, and the policy decides; anonymous adds
// an "anonymous" principal (role anonymous) for unsigned requests. Without
// either, anonymous must be set explicitly: everything is allowed.
type Auth struct {
	Anonymous bool `yaml:"anonymous"`
	// UsersFile is the default realm, "local": passwords and tokens.
	UsersFile string `yaml:"users_file"`
	// Realms are more places users log in from; the realm in the
	// credentials picks one.
	Realms map[string]Realm `yaml:"realms"`
	// SecretFile holds the gateway's signing secret, made on first start;
	// managers sharing a queue must share it. Default: beside users_file,
	// or beside this config without one.
	SecretFile string `yaml:"secret_file"`
	// MaxAge bounds the clock difference between a signing client and the
	// manager. Default 10m.
	MaxAge time.Duration `yaml:"signature_max_age"`
}

// Realm is one realm of the config: the kind of authenticator and its
// settings. An empty realm ({}) is one the manager binary registers in code
// (workers.Options.Authenticators); listing it here turns authentication
// on and lets the manager check at start that the binary has it.
type Realm struct {
	LDAP *ldap.Config `yaml:"ldap"`
}

// Enabled reports whether requests are authenticated.
func (a Auth) Enabled() bool { return a.UsersFile != "" || len(a.Realms) > 0 }

// Environment is a place releases go to (dev, qa, test, prod).
type Environment struct {
	// Protected: every release and rollback into it needs approval with
	// four eyes, and only a policy rule that names the environment itself
	// (not a glob such as "*") lets anyone install, approve or cancel there.
	Protected bool `yaml:"protected"`
	// How releases go through the environment's hosts.
	Rollout rollout.Policy `yaml:"rollout"`
	// Lock: wait (default) for another release of the same named target
	// to end, refuse the second release, or off.
	Lock string `yaml:"lock"`
	// LockTimeout bounds a wait for the lock; then the release ends
	// REJECTED naming the holder. Default 1h.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// Approval: required pauses a release after its build until someone
	// approves it; none (default) does not.
	Approval        string        `yaml:"approval"`
	FourEyes        bool          `yaml:"four_eyes"`
	ApprovalTimeout time.Duration `yaml:"approval_timeout"` // default 24h
	// Webhooks are POSTed the final status of every release here.
	Webhooks []string `yaml:"webhooks"`
}

// ProjectDef is the seed's Project: a set of named targets.
type ProjectDef struct {
	Description string   `yaml:"description"`
	Targets     []string `yaml:"targets"`
}

// ReleaseTimeouts bound the steps of a release.
type ReleaseTimeouts struct {
	Build   time.Duration `yaml:"build"`   // default 1h
	Install time.Duration `yaml:"install"` // default 30m
	// Host bounds how long an install waits for its host to pick it up
	// before the host is reported unreachable. Default 5m.
	Host time.Duration `yaml:"host"`
	// Heartbeat is how long a silent build or install counts as lost, so a
	// killed worker's task moves to another attempt. Default 30s: long
	// enough that a Temporal service restarting (history comes back and
	// frontend and matching reconnect within seconds) never costs a
	// rebuild. Activities heartbeat every 3s whatever this is, so a cancel
	// still reaches them within seconds.
	Heartbeat time.Duration `yaml:"heartbeat"`
}

// Builder is builder.yaml.
type Builder struct {
	Service `yaml:",inline"`
	// Name identifies this builder in the registry; default the host name.
	Name      string        `yaml:"name"`
	Artifacts string        `yaml:"artifacts"` // store URL: file://DIR, s3://BUCKET?..., mem://
	WorkDir   string        `yaml:"work_dir"`
	Lease     time.Duration `yaml:"lease"` // default 60s; renewed every lease/3
	// SigningKeyFile holds the key that signs the builder's build records
	// in the artifact store (build once), made on first start; builders
	// sharing a store share it. Default build-signing.key in work_dir.
	SigningKeyFile string                   `yaml:"signing_key_file"`
	Projects       map[string]BuildBehavior `yaml:"projects"`
	// Managers are the managers the builder serves when it serves more
	// than one (the seed's "register itself with multiple ReleaseManager
	// instances"); empty: the one of manager_queue and registry_id.
	Managers []ManagerRef `yaml:"managers"`
	// managersConflict: manager_queue or registry_id disagree with Managers.
	managersConflict bool
	path             string
}

// BuildBehavior is how one project is built: the seed's BuildBehavior.
type BuildBehavior struct {
	Source  Source            `yaml:"source"`
	Steps   []Step            `yaml:"steps"`
	Outputs map[string]Output `yaml:"outputs"` // named target -> output
	// Env is added to every step's clean environment.
	Env map[string]string `yaml:"env"`
}

// Source is where a project's code lives.
type Source struct {
	Git string `yaml:"git"` // repository URL or path
	Svn string `yaml:"svn"` // repository root URL (trunk/branches/tags layout)
	// SvnUsername and SvnPassword authenticate svn; the password is handed to
	// svn on stdin, never on a command line.
	SvnUsername string `yaml:"svn_username"`
	SvnPassword string `yaml:"svn_password"`
	// AllowedURLPrefixes limit the selector's url; empty allows only the
	// configured repository.
	AllowedURLPrefixes []string `yaml:"allowed_url_prefixes"`
}

// Step is one build command. Run is an argv; no shell is added.
type Step struct {
	Name    string        `yaml:"name"`
	Run     []string      `yaml:"run"`
	Dir     string        `yaml:"dir"`     // relative to the checkout
	Timeout time.Duration `yaml:"timeout"` // default 30m
}

// Output is what a named target is made of: a path in the checkout. A
// directory becomes a tar.gz; a file stays as it is.
type Output struct {
	Path string `yaml:"path"`
}

// Installer is installer.yaml.
type Installer struct {
	Service   `yaml:",inline"`
	Host      string        `yaml:"host"`
	Artifacts string        `yaml:"artifacts"`
	WorkDir   string        `yaml:"work_dir"`
	Lease     time.Duration `yaml:"lease"`
	// Environments: env -> named target -> install behavior.
	Environments map[string]map[string]InstallBehavior `yaml:"environments"`
	// Managers are the managers the host serves when it serves more than
	// one; empty: the one of manager_queue and registry_id.
	Managers []ManagerRef `yaml:"managers"`
	// Trust is whose install orders the host runs.
	Trust            InstallerTrust `yaml:"trust"`
	managersConflict bool
	path             string
}

// InstallerTrust is whose install orders an installer runs: only orders
// signed by one of these manager keys. There is no setting that runs
// unsigned orders: anyone who may schedule activities in the namespace
// could then install anything on the host.
type InstallerTrust struct {
	// ManagerKeys are the managers' order-signing public keys (base64, as
	// relman manager-key prints them); several, so a key can be rotated
	// and several managers trusted.
	ManagerKeys []string `yaml:"manager_keys"`
	// ManagerKeyFiles are files holding such a key, one per file, as the
	// manager writes it beside its orders_key_file (orders.key.pub); read
	// at each order, so a file written after the installer started, or a
	// rotated key, counts. Relative paths are against this config's folder.
	ManagerKeyFiles []string `yaml:"manager_key_files"`
}

// InstallBehavior is how a named target is installed: the seed's
// InstallBehavior plus its path.
type InstallBehavior struct {
	Behavior string `yaml:"behavior"` // unarchive, copy, command, or a registered custom one
	Path     string `yaml:"path"`
	Mode     string `yaml:"mode"` // copy: octal file mode, default 0644
	// Command is the argv of the command behavior.
	Command []string          `yaml:"command"`
	Timeout time.Duration     `yaml:"timeout"`
	Options map[string]string `yaml:"options"` // for custom behaviors
	// Keep is how many releases the release behavior keeps (default 5);
	// the current one and the one before it are never removed.
	Keep int `yaml:"keep"`
	// Shared names directories under <path>/shared linked into every
	// release (release behavior), such as logs or uploads.
	Shared []string `yaml:"shared"`
	// Health is checked after every install of the target.
	Health *HealthCheck `yaml:"health"`
}
