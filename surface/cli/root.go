// Package cli is the relman command line: one binary for every role
// (manager, builder, installer, dev) and every client action (release,
// status, history, list, cancel, registrations). Commands get their IO and
// environment injected, so tests run the real CLI in-process.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/telemetry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/workflows"
)

// Exit codes, documented in the README.
const (
	ExitOK = 0
	// ExitError: the command could not do what was asked.
	ExitError = 1
	// ExitUsage: the command line was wrong.
	ExitUsage = 2
	// ExitReleaseFailed: --wait or --follow saw the release end in a status
	// other than success (REJECTED, BUILD_FAILED, INSTALL_FAILED, CANCELLED).
	ExitReleaseFailed = 3
)

// Version is set at build time with -ldflags "-X ...cli.Version=v".
var Version = "dev"

// Commit is the commit relman was built from, set at link time by make
// (-X ...cli.Commit=...); empty, the binary's own build information (go
// build in a git checkout) says it, if it can.
var Commit = ""

// Options are what a command reads and writes, injected for tests.
type Options struct {
	Stdout    io.Writer
	Stderr    io.Writer
	Stdin     io.Reader
	LookupEnv func(string) (string, bool)
	// IsTerminal reports whether Stdout is a terminal (live bars vs lines).
	IsTerminal func() bool
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// app is the state shared by the commands of one invocation.
type app struct {
	opts     Options
	output   string
	conn     config.Temporal
	connSet  map[string]bool
	queue    string
	registry string
	logLevel string
	tel      *telemetry.Telemetry
	// tokenFile holds the user's relman token, to sign requests.
	tokenFile string
	// managerURLFlag is --manager-url: the client commands then go through
	// the manager's API (api.go); managerCA verifies its certificate.
	managerURLFlag, managerCA string
	// cmdPath is the running command, for errors.
	cmdPath string
	// client is the user's client.yaml, read once (api.go).
	client struct {
		done bool
		c    *config.Client
		err  error
	}
}

// Execute runs the CLI with args and returns the exit code.
func Execute(ctx context.Context, args []string, opts Options) int {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.IsTerminal == nil {
		opts.IsTerminal = func() bool { return false }
	}
	a := &app{opts: opts}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	root.SetIn(opts.Stdin)
	err := root.ExecuteContext(ctx)
	if a.tel != nil {
		_ = a.tel.Shutdown(context.WithoutCancel(ctx))
	}
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(opts.Stderr, "Error: "+oneLine(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsage(err) {
		return ExitUsage
	}
	return ExitError
}

// isUsage recognises cobra's own argument and flag errors.
func isUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "flag needs", "invalid argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "relman",
		Short: "Build projects from source control and install them into environments, durably, on Temporal",
		Long: `relman builds a project from source control and installs it on every host of an
environment. Each request is a durable Temporal workflow whose id is the
transaction id and whose event history is the transaction log.

One binary serves every role (manager, builder, installer, dev) and every
client action (release, status, history, list, cancel, registrations).

Exit codes: 0 success; 1 the command could not do what was asked; 2 the
command line was wrong; 3 the release ended in a status other than success.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.conn.Address, "address", "", "Temporal service address (env TEMPORAL_ADDRESS, default localhost:7233)")
	pf.StringVarP(&a.conn.Namespace, "namespace", "n", "", "Temporal namespace (env TEMPORAL_NAMESPACE, default \"default\")")
	pf.StringVar(&a.conn.APIKey, "api-key", "", "API key for Temporal (env TEMPORAL_API_KEY)")
	pf.BoolVar(&a.conn.TLS, "tls", false, "connect with TLS (env TEMPORAL_TLS)")
	pf.StringVar(&a.conn.TLSCertPath, "tls-cert-path", "", "client certificate for mTLS (env TEMPORAL_TLS_CERT)")
	pf.StringVar(&a.conn.TLSKeyPath, "tls-key-path", "", "client key for mTLS (env TEMPORAL_TLS_KEY)")
	pf.StringVar(&a.conn.TLSCACertPath, "tls-ca-path", "", "CA certificate to verify the server (env TEMPORAL_TLS_CA)")
	pf.StringVar(&a.conn.TLSServerName, "tls-server-name", "", "server name to verify (env TEMPORAL_TLS_SERVER_NAME)")
	pf.StringVar(&a.conn.EncryptionKeyFile, "encryption-key-file", "", "payload encryption keys, when the namespace's payloads are encrypted (env RELMAN_ENCRYPTION_KEY_FILE)")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&a.queue, "manager-queue", workflows.DefaultManagerQueue, "task queue of the manager to talk to")
	pf.StringVar(&a.registry, "registry-id", workflows.DefaultRegistryID, "workflow id of the manager's registry")
	pf.StringVar(&a.logLevel, "log-level", "", "log level of a role: debug, info, warn, error (overrides the config)")
	pf.StringVar(&a.tokenFile, "token-file", "", "file holding your relman token, to sign requests (env RELMAN_TOKEN_FILE, or the token itself in RELMAN_TOKEN)")
	pf.StringVar(&a.managerURLFlag, "manager-url", "", "the manager's API (its gateway), such as https://relman.example.com:10000/: client commands go through it with your token and need no Temporal access (env RELMAN_MANAGER_URL)")
	pf.StringVar(&a.managerCA, "manager-ca-path", "", "CA certificate that verifies the manager's gateway certificate (env RELMAN_MANAGER_CA; default: the system's)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.cmdPath = cmd.CommandPath()
		if a.output != "text" && a.output != "json" {
			return usageErr("--output must be text or json, not %q", a.output)
		}
		a.connSet = map[string]bool{}
		cmd.Flags().Visit(func(f *pflag.Flag) { a.connSet[f.Name] = true })
		return nil
	}
	root.AddCommand(
		a.releaseCommand(),
		a.statusCommand(),
		a.historyCommand(),
		a.listCommand(),
		a.cancelCommand(),
		a.planCommand(),
		a.decisionCommand(true),
		a.decisionCommand(false),
		a.whereCommand(),
		a.rollbackCommand(),
		a.registrationsCommand(),
		a.roleCommand("manager"),
		a.roleCommand("builder"),
		a.roleCommand("installer"),
		a.configCommand(),
		a.devCommand(),
		a.namespaceCommand(),
		a.generateCommand(),
		a.buildCommand(),
		a.installCommand(),
		a.userCommand(),
		a.tokenCommand(),
		a.codecKeyCommand(),
		a.managerKeyCommand(),
		a.codecServerCommand(),
		a.versionCommand(),
	)
	return root
}

// temporalSettings merges the connection: flags over the environment over
// the file's settings over defaults.
func (a *app) temporalSettings(file config.Temporal) config.Temporal {
	t := file
	t.ApplyEnv(a.opts.LookupEnv)
	set := func(name string, dst *string, v string) {
		if a.connSet[name] {
			*dst = v
		}
	}
	set("address", &t.Address, a.conn.Address)
	set("namespace", &t.Namespace, a.conn.Namespace)
	set("api-key", &t.APIKey, a.conn.APIKey)
	set("tls-cert-path", &t.TLSCertPath, a.conn.TLSCertPath)
	set("tls-key-path", &t.TLSKeyPath, a.conn.TLSKeyPath)
	set("tls-ca-path", &t.TLSCACertPath, a.conn.TLSCACertPath)
	set("tls-server-name", &t.TLSServerName, a.conn.TLSServerName)
	set("encryption-key-file", &t.EncryptionKeyFile, a.conn.EncryptionKeyFile)
	if a.connSet["tls"] {
		t.TLS = a.conn.TLS
	}
	return t
}

// dial connects a client command to Temporal. Client commands log only
// warnings, to stderr: a person reads their stdout.
func (a *app) dial() (client.Client, error) {
	if u, err := a.managerURL(); err != nil {
		return nil, err
	} else if u != "" {
		return nil, a.errNotOverAPI()
	}
	log := slog.New(slog.NewTextHandler(a.opts.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if a.tel == nil {
		tel, err := telemetry.Setup(context.Background(), "relman-cli", a.opts.LookupEnv, a.opts.Stderr)
		if err != nil {
			return nil, err
		}
		a.tel = tel
	}
	return temporalclient.Dial(a.temporalSettings(config.Temporal{}), log, temporalclient.Identity("relman-cli"), a.tel.Apply)
}

// dialToStart dials for a command that starts a transaction, and refuses
// when the namespace lacks relman's search attributes: the transaction
// would otherwise never leave STARTED.
func (a *app) dialToStart(ctx context.Context) (client.Client, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	ns := a.temporalSettings(config.Temporal{}).Namespace
	if ns == "" {
		ns = config.DefaultNamespace
	}
	if _, err := temporalclient.CheckSearchAttributes(ctx, c, ns); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.opts.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// transactionCommand is `relman name TXID`: it reads something of the
// transaction (read) and prints it: as JSON with --output json, else as
// text writes it.
func transactionCommand[T any](a *app, name, short string, read func(ctx context.Context, txid string) (T, error), text func(io.Writer, T) error) *cobra.Command {
	const txid = "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10"
	return &cobra.Command{
		Use:     name + " TXID",
		Short:   short,
		Example: "  relman " + name + " " + txid + "\n  relman " + name + " " + txid + " --output json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := read(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(v)
			}
			return text(a.opts.Stdout, v)
		},
	}
}

// withClient is the RunE of a command that talks to Temporal: it dials,
// runs run with the client, and closes it.
func (a *app) withClient(run func(cmd *cobra.Command, args []string, c client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := a.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		return run(cmd, args, c)
	}
}
