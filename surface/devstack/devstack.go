// Package devstack runs relman on one machine: the pinned Temporal dev server
// (SQLite file, Web UI), a manager, a builder and two installer hosts from
// the example configs, and a git repository of the example project. All
// state lives under one directory, so a restart keeps transactions and
// registrations.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/examples"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workers"
)

// Configs are the role configs the stack keeps in its directory.
var Configs = []string{"manager.yaml", "builder.yaml", "installer-a.yaml", "installer-b.yaml"}

// Options say where the stack lives and listens.
type Options struct {
	Dir         string
	TemporalBin string // empty: devserver.Find
	Port        int    // Temporal gRPC; 0: a free one (relman dev passes 7233)
	UIPort      int    // Web UI, default 8233; negative: no UI
	// GatewayPort is the manager's XML-RPC gateway; 0 picks a free port,
	// negative: no gateway. `relman dev` passes 10000 unless told otherwise.
	GatewayPort int
	Out         io.Writer
	// With adjusts every role's Temporal client options (telemetry).
	With func(*client.Options)
}

// Stack is a running dev stack.
type Stack struct {
	Dir     string
	Address string
	UIURL   string
	// GatewayURL is the XML-RPC gateway, empty when it is off.
	GatewayURL string
	// Hosts maps each installer host to its install root.
	Hosts  map[string]string
	Client client.Client
	// Retention is what the namespace keeps of closed transactions, and
	// Records the store the manager keeps their records in after (empty:
	// none).
	Retention temporalclient.Retention
	Records   string

	server *devserver.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

// Start brings the stack up and returns once every role is serving.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if err := writeExamples(dir); err != nil {
		return nil, err
	}
	if err := examples.MakeRepo(ctx, filepath.Join(dir, "repos", "template")); err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir, Hosts: map[string]string{}, errs: make(chan error, 8)}
	srv, err := devserver.Start(ctx, devserver.Options{
		Bin:     o.TemporalBin,
		DBFile:  filepath.Join(dir, "temporal.db"),
		Port:    o.Port,
		UIPort:  max(o.UIPort, 0),
		LogPath: filepath.Join(dir, "logs", "temporal.log"),
	})
	if err != nil {
		return nil, err
	}
	s.server, s.Address, s.UIURL, s.Retention = srv, srv.Address, srv.UIURL, srv.Retention
	if s.Client, err = devserver.Dial(s.Address, "relman-dev"); err != nil {
		s.Stop()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if err := s.startRoles(rctx, dir, o); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.recordPorts(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

var (
	addressLine    = regexp.MustCompile(`(?m)^(  address:[ \t]*)\S+`)
	listenPortLine = regexp.MustCompile(`(?m)^(listen_port:[ \t]*)\d+`)
)

// replaceFirst sets the value of re's first match in b (group 1 is the key).
func replaceFirst(re *regexp.Regexp, b []byte, value string) []byte {
	m := re.FindSubmatchIndex(b)
	if m == nil {
		return b
	}
	out := append([]byte(nil), b[:m[3]]...)
	out = append(out, value...)
	return append(out, b[m[1]:]...)
}

// recordPorts writes the address Temporal serves on, and the manager's
// gateway port, into the configs the stack leaves in its directory, so
// they say what runs (a port chosen free, 0 on the command line) and a
// role started by hand from them finds it. Comments and edits stay.
func (s *Stack) recordPorts() error {
	gatewayPort := ""
	if s.GatewayURL != "" {
		u, err := url.Parse(s.GatewayURL)
		if err != nil {
			return fmt.Errorf("gateway url %s: %w", s.GatewayURL, err)
		}
		gatewayPort = u.Port()
	}
	for _, name := range Configs {
		p := filepath.Join(s.Dir, name)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out := replaceFirst(addressLine, b, s.Address)
		if name == "manager.yaml" && gatewayPort != "" {
			out = replaceFirst(listenPortLine, out, gatewayPort)
		}
		if string(out) == string(b) {
			continue
		}
		if err := os.WriteFile(p, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startRoles runs the manager (with the gateway unless GatewayPort is
// negative), the builder and both hosts in this process, each started by
// workers.Start with its own client and log, and waits until all serve.
func (s *Stack) startRoles(ctx context.Context, dir string, o Options) error {
	var cfgs []config.File
	for _, f := range Configs {
		c, err := config.Load(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		c.Base().Temporal.Address = s.Address
		if ic, ok := c.(*config.Installer); ok {
			if b, ok := ic.Environments["test"]["template"]; ok {
				s.Hosts[ic.Host] = b.Path
			}
		}
		cfgs = append(cfgs, c)
	}
	ready := make(chan workers.Serving, len(cfgs))
	for _, c := range cfgs {
		opts := workers.Options{ClientOptions: o.With, Gateway: xmlrpc.Serve, Ready: func(sv workers.Serving) { ready <- sv }}
		if m, ok := c.(*config.Manager); ok {
			s.Records = m.Artifacts
			if o.GatewayPort < 0 {
				m.Gateway.Off = true
			} else {
				opts.GatewayAddress = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.GatewayPort))
			}
		}
		log, closeLog, err := workers.NewLogger(c.Base().Logging, io.Discard)
		if err != nil {
			return err
		}
		opts.Logger = log
		run := workers.Start(ctx, c, opts)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer closeLog()
			if err := run.Err(); err != nil {
				s.errs <- fmt.Errorf("%s: %w", c.Role(), err)
			}
		}()
	}
	deadline := time.After(60 * time.Second)
	for range cfgs {
		select {
		case sv := <-ready:
			if sv.GatewayURL != "" {
				s.GatewayURL = sv.GatewayURL
			}
		case err := <-s.errs:
			if strings.Contains(err.Error(), "xml-rpc gateway on") {
				return fmt.Errorf("%w; pass --gateway-port with a free port, or 0 for any", err)
			}
			return err
		case <-deadline:
			return errors.New("the manager, builder and installer hosts did not serve within 60s; see the logs under " + filepath.Join(s.Dir, "logs"))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Errs reports a role that stopped on its own.
func (s *Stack) Errs() <-chan error { return s.errs }

// ServerExited is closed when the Temporal server exits.
func (s *Stack) ServerExited() <-chan struct{} { return s.server.Exited() }

// Stop stops the roles (they deregister), then the Temporal server.
func (s *Stack) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.Client != nil {
		s.Client.Close()
	}
	if s.server != nil {
		_ = s.server.Stop(15 * time.Second)
	}
}

// writeExamples copies the example configs into dir unless they are there
// already, so edits made in dir survive restarts.
func writeExamples(dir string) error {
	for _, name := range Configs {
		dst := filepath.Join(dir, name)
		if _, err := os.Stat(dst); err == nil {
			if err := addTrust(dst); err != nil {
				return err
			}
			continue
		}
		b, err := examples.FS.ReadFile(name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// trustLine finds an installer config's trust section.
var trustLine = regexp.MustCompile(`(?m)^trust:`)

// devTrust is the trust section a dev stack's installer gets: the public
// key the dev manager writes beside its orders key, in the same directory.
const devTrust = `# Added by relman dev: installers run only orders the manager signed; the
# manager writes its public key beside its orders key at start.
trust:
  manager_key_files: [orders.key.pub]
`

// addTrust gives an installer config a stack made before installers
// checked signed orders the dev manager's key, keeping the rest of the
// file as it is; any other config, or one with a trust section, stays.
func addTrust(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !installerLine.Match(b) || trustLine.Match(b) {
		return nil
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	return os.WriteFile(path, append(b, devTrust...), 0o644)
}

// installerLine finds an installer config's host.
var installerLine = regexp.MustCompile(`(?m)^host:`)
