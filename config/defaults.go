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
	DefaultAddress        = "localhost:7233"
	DefaultNamespace      = "default"
	DefaultLogLevel       = "info"
	DefaultManagerQueue   = "relman-manager"
	DefaultRegistryID     = "relman-registry"
	DefaultListenPort     = 10000
	DefaultListenAddress  = "127.0.0.1"
	DefaultBuildTimeout   = time.Hour
	DefaultInstallTimeout = 30 * time.Minute
	DefaultHostTimeout    = 5 * time.Minute
	// DefaultHeartbeatTimeout is how long a silent build or install counts
	// as lost, so a killed worker's task moves to another attempt. The
	// Release workflow uses it too when a plan leaves the timeout zero.
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
	// DefaultAuthMaxAge bounds the clock difference between a signing client
	// and the manager: how old a signed request may be when it arrives.
	DefaultAuthMaxAge = 10 * time.Minute
	// DefaultOrdersKeyFile is the manager's order-signing key, beside its config.
	DefaultOrdersKeyFile = "orders.key"
)

// Defaults the workflows, activities and workers read. They are not in a
// config file (yet): one name each here, so nothing keeps a second copy.
const (
	// DefaultManagerActivityTimeout bounds one of the manager's short
	// activities (plan, authorize, hosts, an earlier build's artifacts).
	DefaultManagerActivityTimeout = 30 * time.Second
	// DefaultOrderMargin is what a signed order's validity adds to the
	// longest its host activity may take (every attempt's wait for the host
	// and run): retry backoffs, and the manager's and the host's clocks
	// disagreeing.
	DefaultOrderMargin = 10 * time.Minute
	// DefaultManagerActivityAttempts is how often such an activity is tried.
	DefaultManagerActivityAttempts = 5
	// DefaultReadAttempts is how often a read a person waits for (a plan
	// only, closed-transaction records) is tried.
	DefaultReadAttempts = 3
	// DefaultWorkAttempts bounds the tries of a build or install: enough to
	// ride out a worker restart, few enough that a broken host fails the
	// release.
	DefaultWorkAttempts = 3
	// DefaultWebhookAttempts is how often a webhook call is tried.
	DefaultWebhookAttempts = 5
	// DefaultLocalRetryInterval is the first retry interval of a local
	// activity or a quick manager call: short, the manager is at hand.
	DefaultLocalRetryInterval = 100 * time.Millisecond
	// DefaultLocalRetryMax caps the retry interval of those calls.
	DefaultLocalRetryMax = 5 * time.Second
	// DefaultLockCheck is how often a Lock looks whether its holder's run
	// still runs.
	DefaultLockCheck = time.Minute
	// DefaultLockIdle is how long a Lock nobody holds or waits for stays
	// before it ends.
	DefaultLockIdle = 10 * time.Minute
	// DefaultReadRecordsTimeout bounds one read of closed-transaction records.
	DefaultReadRecordsTimeout = time.Minute
	// DefaultRollbackTimeout bounds one host's switch of one target back.
	DefaultRollbackTimeout = 2 * time.Minute
	// DefaultWhereHostTimeout bounds a where's wait for one host: a person
	// is waiting, and a silent host is itself the answer.
	DefaultWhereHostTimeout = 30 * time.Second
	// DefaultWebhookTimeout bounds one webhook call.
	DefaultWebhookTimeout = 15 * time.Second
	// DefaultWebhookRetryInterval is the first wait before a webhook retry.
	DefaultWebhookRetryInterval = time.Second
	// DefaultWebhookRetryMax is the longest wait between webhook retries.
	DefaultWebhookRetryMax = 30 * time.Second
	// DefaultWebhookHTTPTimeout is the HTTP client's timeout for a webhook.
	DefaultWebhookHTTPTimeout = 10 * time.Second
	// DefaultRecordTimeout bounds one attempt to write a closed-transaction
	// record.
	DefaultRecordTimeout = 2 * time.Minute
	// DefaultRecordRetryInterval is the first wait before a record retry.
	DefaultRecordRetryInterval = time.Second
	// DefaultRecordRetryMax is the longest wait between record retries.
	DefaultRecordRetryMax = 10 * time.Minute
	// DefaultRecordPatience is how long a record is retried: a week.
	DefaultRecordPatience = 7 * 24 * time.Hour
	// DefaultHeartbeatEvery is how often a long activity heartbeats, well
	// under DefaultHeartbeatTimeout.
	DefaultHeartbeatEvery = 3 * time.Second
	// DefaultMinHeartbeatEvery bounds how often a heartbeat is sent.
	DefaultMinHeartbeatEvery = 100 * time.Millisecond
	// DefaultStopTimeout is how long a stopping worker lets running
	// activities finish before it hands them back.
	DefaultStopTimeout = 10 * time.Second
	// DefaultAwayStopWait bounds a stop while Temporal does not answer:
	// the workers' goodbye to the server would hold it for seconds.
	DefaultAwayStopWait = 200 * time.Millisecond
	// DefaultTelemetryFlushTimeout bounds the flush of traces at exit.
	DefaultTelemetryFlushTimeout = 2 * time.Second
	// DefaultDeregisterTimeout bounds a stopping worker's deregistration.
	DefaultDeregisterTimeout = 3 * time.Second
	// DefaultReachTimeout bounds the check that a manager answers.
	DefaultReachTimeout = 500 * time.Millisecond
	// DefaultRetentionTimeout bounds the manager's retention check.
	DefaultRetentionTimeout = 10 * time.Second
	// DefaultRunsWait bounds the manager's wait for its runs at stop.
	DefaultRunsWait = 15 * time.Second
	// DefaultPollStep is the pause between two looks at something that
	// changes soon (visibility catching up with a run, say).
	DefaultPollStep = 200 * time.Millisecond
	// DefaultMinRenewEvery is the shortest pause between two lease renewals.
	DefaultMinRenewEvery = time.Second
	// DefaultRenewRetry is the pause before a failed renewal is tried again.
	DefaultRenewRetry = 2 * time.Second
	// DefaultStatusReadHeaderTimeout bounds a status request's headers.
	DefaultStatusReadHeaderTimeout = 5 * time.Second
	// DefaultStatusStopTimeout bounds the status server's shutdown.
	DefaultStatusStopTimeout = 2 * time.Second
	// DefaultRetryInterval is the first wait of relman's client-side
	// backoff (dial, register, update-with-start).
	DefaultRetryInterval = 50 * time.Millisecond
	// DefaultRetryMax is the longest wait of that backoff for a quick call.
	DefaultRetryMax = 2 * time.Second
	// DefaultReconnectInterval and DefaultReconnectMax bound a worker's
	// waits while Temporal or its manager is away.
	DefaultReconnectInterval = time.Second
	DefaultReconnectMax      = 30 * time.Second
	// DefaultAskTimeout bounds a wait for the desk's answer.
	DefaultAskTimeout = 2 * time.Minute
	// DefaultSameRequestWait bounds a wait for an earlier same request.
	DefaultSameRequestWait = 30 * time.Second
	// DefaultRecordsWait bounds a reader's wait for the manager's records.
	DefaultRecordsWait = 30 * time.Second
	// DefaultFollowEvery is how often a client polls a transaction's detail.
	DefaultFollowEvery = 300 * time.Millisecond
	// DefaultAPIFollowEvery is how often a client polls a transaction's
	// detail through the manager's API: each poll is an HTTPS call the
	// gateway answers from Temporal.
	DefaultAPIFollowEvery = time.Second
	// DefaultAPIWaitOutage is how long a client waiting through the
	// manager's API goes on polling while the gateway does not answer (a
	// manager restarting) before it gives up.
	DefaultAPIWaitOutage = 2 * time.Minute
	// DefaultRecordCloseWait is how often a recorder looks whether its
	// transaction has closed: it closes within a workflow task of starting
	// its recorder.
	DefaultRecordCloseWait = 200 * time.Millisecond
	// DefaultSharedReadTimeout bounds one registry read shared by callers.
	DefaultSharedReadTimeout = 30 * time.Second
	// DefaultToolWaitDelay bounds the wait for a source tool's pipes after
	// it exits, in case a helper it spawned (ssh, a credential helper)
	// keeps them open.
	DefaultToolWaitDelay = 5 * time.Second
	// DefaultStepKillGrace is how long a build step's processes get
	// between SIGTERM and SIGKILL.
	DefaultStepKillGrace = 5 * time.Second
	// DefaultStepDrainTimeout bounds the wait for a step's output after its
	// process group is gone.
	DefaultStepDrainTimeout = 2 * time.Second
	// DefaultS3DialTimeout: an S3 store that does not accept a connection
	// within it is reported unreachable rather than waited for.
	DefaultS3DialTimeout = 5 * time.Second
	// DefaultGatewayCallTimeout bounds one XML-RPC method call.
	DefaultGatewayCallTimeout = 30 * time.Second
	// The gateway's HTTP bounds: a slow or stuck client cannot hold a
	// connection. DefaultGatewayCloseGrace is how long calls in flight at
	// Close may go on before their contexts end.
	DefaultGatewayReadHeaderTimeout = 10 * time.Second
	DefaultGatewayReadTimeout       = 30 * time.Second
	DefaultGatewayWriteSlack        = 15 * time.Second
	DefaultGatewayIdleTimeout       = 2 * time.Minute
	DefaultGatewayShutdownTimeout   = 5 * time.Second
	DefaultGatewayCloseGrace        = time.Second
	// The gateway's login throttle: the first delay after a failed login,
	// the longest, and how long a quiet user or address is remembered.
	DefaultLoginBaseDelay = time.Second
	DefaultLoginMaxDelay  = 15 * time.Minute
	DefaultLoginForget    = time.Hour
	// DefaultCancelWait is how long relman cancel waits for the end.
	DefaultCancelWait = time.Minute
	// DefaultDevStartWait bounds relman dev's wait for its stack.
	DefaultDevStartWait = 5 * time.Minute
	// DefaultCodecReadHeaderTimeout and DefaultCodecStopTimeout bound the
	// codec server's requests and its shutdown.
	DefaultCodecReadHeaderTimeout = 10 * time.Second
	DefaultCodecStopTimeout       = 5 * time.Second
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
		c.Auth.MaxAge = DefaultAuthMaxAge
	}
	if c.Artifacts != "" {
		// Unlike a builder's, a manager's store is optional: empty stays
		// empty (no records).
		c.Artifacts = artifactsURL(c.Artifacts, dir)
		c.RecordsKeyFile = absPath(orDefault(c.RecordsKeyFile, DefaultRecordsKeyFile), dir)
	}
	c.OrdersKeyFile = absPath(orDefault(c.OrdersKeyFile, DefaultOrdersKeyFile), dir)
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
	for i, f := range c.Trust.ManagerKeyFiles {
		c.Trust.ManagerKeyFiles[i] = absPath(f, dir)
	}
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
