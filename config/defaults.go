package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults. Exported so the CLI's help and `relman generate` print the same
// values the loader fills in.
const (
	DefaultAddress          = "localhost:7233"
	DefaultNamespace        = "default"
	DefaultLogLevel         = "info"
	DefaultManagerQueue     = "relman-manager"
	DefaultRegistryID       = "relman-registry"
	DefaultListenPort       = 10000
	DefaultListenAddress    = "127.0.0.1"
	DefaultBuildTimeout     = time.Hour
	DefaultInstallTimeout   = 30 * time.Minute
	DefaultHostTimeout      = 5 * time.Minute
	DefaultHeartbeatTimeout = 30 * time.Second
	DefaultLease            = 60 * time.Second
	DefaultWorkDir          = "work"
	DefaultStepTimeout      = 30 * time.Minute
	DefaultBehaviorTimeout  = 10 * time.Minute
	DefaultCopyMode         = "0644"
	// DefaultSigningKeyFile is where a builder keeps the key of its build
	// records, in its work dir.
	DefaultSigningKeyFile = "build-signing.key"
	// DefaultLockTimeout bounds a release's wait for an environment's lock.
	DefaultLockTimeout = time.Hour
	// DefaultMinRetention is the namespace retention below which a manager
	// warns: an audit of last month's releases should not depend on
	// relman's own records alone.
	DefaultMinRetention = 30 * 24 * time.Hour
	// DefaultRecordsKeyFile is the manager's records key, beside its config.
	DefaultRecordsKeyFile = "records.key"
)

// Default fills in what the file left out and makes its paths absolute
// against Dir. It is idempotent, so a config built in code may call it
// before Validate too.
func (c *Manager) Default() {
	dir := baseDir(c.path)
	c.Service.defaults(dir)
	if c.ListenPort == 0 {
		c.ListenPort = DefaultListenPort
	}
	c.ListenAddress = orDefault(c.ListenAddress, DefaultListenAddress)
	c.Gateway.TLSCertPath = absPath(c.Gateway.TLSCertPath, dir)
	c.Gateway.TLSKeyPath = absPath(c.Gateway.TLSKeyPath, dir)
	if c.Timeouts.Build == 0 {
		c.Timeouts.Build = DefaultBuildTimeout
	}
	if c.Timeouts.Install == 0 {
		c.Timeouts.Install = DefaultInstallTimeout
	}
	if c.Timeouts.Host == 0 {
		c.Timeouts.Host = DefaultHostTimeout
	}
	if c.Timeouts.Heartbeat == 0 {
		c.Timeouts.Heartbeat = DefaultHeartbeatTimeout
	}
	c.defaultEnvironments()
	if c.Auth.UsersFile != "" {
		c.Auth.UsersFile = absPath(c.Auth.UsersFile, dir)
		if c.Auth.SecretFile == "" {
			c.Auth.SecretFile = filepath.Join(filepath.Dir(c.Auth.UsersFile), "gateway.secret")
		}
	}
	if c.Auth.SecretFile == "" && c.Auth.Enabled() {
		c.Auth.SecretFile = filepath.Join(dir, "gateway.secret")
	}
	if c.Auth.SecretFile != "" {
		c.Auth.SecretFile = absPath(c.Auth.SecretFile, dir)
	}
	for _, r := range c.Auth.Realms {
		if r.LDAP != nil && r.LDAP.CAFile != "" {
			r.LDAP.CAFile = absPath(r.LDAP.CAFile, dir)
		}
	}
	if c.Auth.MaxAge == 0 {
		c.Auth.MaxAge = 10 * time.Minute
	}
	if c.Artifacts != "" {
		// Unlike a builder's, a manager's store is optional: empty stays
		// empty (no records).
		c.Artifacts = artifactsURL(c.Artifacts, dir)
		c.RecordsKeyFile = absPath(orDefault(c.RecordsKeyFile, DefaultRecordsKeyFile), dir)
	}
	if c.MinRetention == 0 {
		c.MinRetention = DefaultMinRetention
	}
}

// Default fills in what the file left out and makes its paths absolute
// against Dir. The builder's name falls back to the host name, lowercased
// because host names are case-insensitive and builder names are not.
func (c *Builder) Default() {
	dir := baseDir(c.path)
	c.managersConflict = defaultManagers(&c.Service, c.Managers) || c.managersConflict
	c.Service.defaults(dir)
	if c.Name == "" {
		if h, err := os.Hostname(); err == nil {
			c.Name = strings.ToLower(h)
		}
	}
	c.Artifacts = artifactsURL(c.Artifacts, dir)
	c.WorkDir = absPath(orDefault(c.WorkDir, DefaultWorkDir), dir)
	if c.SigningKeyFile == "" {
		// The work dir: a builder can always write there to make the key.
		c.SigningKeyFile = filepath.Join(c.WorkDir, DefaultSigningKeyFile)
	}
	c.SigningKeyFile = absPath(c.SigningKeyFile, dir)
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	for name, p := range c.Projects {
		if isLocalRelative(p.Source.Git) {
			p.Source.Git = filepath.Join(dir, p.Source.Git)
		}
		for i := range p.Steps {
			s := &p.Steps[i]
			if s.Name == "" {
				s.Name = fmt.Sprintf("step-%d", i+1)
			}
			if s.Timeout == 0 {
				s.Timeout = DefaultStepTimeout
			}
		}
		c.Projects[name] = p
	}
}

// Default fills in what the file left out and makes its paths absolute
// against Dir.
func (c *Installer) Default() {
	dir := baseDir(c.path)
	c.managersConflict = defaultManagers(&c.Service, c.Managers) || c.managersConflict
	c.Service.defaults(dir)
	c.Artifacts = artifactsURL(c.Artifacts, dir)
	c.WorkDir = absPath(orDefault(c.WorkDir, DefaultWorkDir), dir)
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	for _, targets := range c.Environments {
		for name, b := range targets {
			b.Path = absPath(b.Path, dir)
			if b.Timeout == 0 {
				b.Timeout = DefaultBehaviorTimeout
			}
			if b.Behavior == BehaviorCopy && b.Mode == "" {
				b.Mode = DefaultCopyMode
			}
			b.defaultRollout()
			targets[name] = b
		}
	}
}

func (s *Service) defaults(dir string) {
	s.Temporal.Address = orDefault(s.Temporal.Address, DefaultAddress)
	s.Temporal.Namespace = orDefault(s.Temporal.Namespace, DefaultNamespace)
	s.Temporal.TLSCertPath = absPath(s.Temporal.TLSCertPath, dir)
	s.Temporal.TLSKeyPath = absPath(s.Temporal.TLSKeyPath, dir)
	s.Temporal.TLSCACertPath = absPath(s.Temporal.TLSCACertPath, dir)
	s.Temporal.EncryptionKeyFile = absPath(s.Temporal.EncryptionKeyFile, dir)
	s.Logging.Path = absPath(s.Logging.Path, dir)
	s.Logging.Level = orDefault(s.Logging.Level, DefaultLogLevel)
	s.ManagerQueue = orDefault(s.ManagerQueue, DefaultManagerQueue)
	s.RegistryID = orDefault(s.RegistryID, DefaultRegistryID)
}

// baseDir is absolute even for a config built in code (no path), so that
// defaults never depend on the working directory at the time of use.
func baseDir(path string) string {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func absPath(p, dir string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// artifactsURL turns the forms an operator naturally writes (a plain
// directory, file://./artifacts, file://artifacts) into the absolute file://
// URL the blob store needs; other schemes pass through untouched.
func artifactsURL(s, dir string) string {
	if s == "" {
		return fileURL(filepath.Join(dir, "artifacts"), "")
	}
	rest, isFile := strings.CutPrefix(s, "file://")
	if !isFile {
		if strings.Contains(s, "://") {
			return s
		}
		return fileURL(absPath(s, dir), "")
	}
	// url.Parse would read the "." of file://./x as a host, so split by hand.
	p, query, _ := strings.Cut(rest, "?")
	if filepath.IsAbs(p) {
		return s
	}
	return fileURL(filepath.Join(dir, p), query)
}

func fileURL(path, query string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: query}).String()
}

// isLocalRelative follows git's own rule: a URL has "://", an scp-like
// address has a colon before its first slash, anything else is a path.
func isLocalRelative(src string) bool {
	if src == "" || filepath.IsAbs(src) || strings.Contains(src, "://") {
		return false
	}
	colon := strings.IndexByte(src, ':')
	slash := strings.IndexByte(src, '/')
	if colon >= 0 && (slash < 0 || colon < slash) {
		return false
	}
	return true
}
