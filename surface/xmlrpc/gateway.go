package xmlrpc

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/realm"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workers"
)

// RequestKeys are the keys request_action accepts in request_data.
var RequestKeys = []string{"action", "batch", "branch", "env", "from", "max_failures", "pause", "project", "rebuild", "request_id", "revision", "strategy", "tag", "trunk", "url"}

// Gateway serves the seed's XML-RPC methods on a Temporal client and the
// manager's config.
type Gateway struct {
	Client client.Client
	Config *config.Manager
	Log    *slog.Logger
	// Now is the clock for lease expiry; nil means time.Now.
	Now func() time.Time
	// Secret signs requests of authenticated users (auth on), so the
	// manager knows the gateway vouched for them.
	Secret []byte
	// Realms authenticate credentials (auth on): the realm in them picks
	// the authenticator.
	Realms *auth.Registry
	// Records answer for transactions Temporal no longer has (the
	// manager's closed-transaction records); nil: none.
	Records transaction.Records

	// logins slows down password guessing (throttle.go); Server makes it.
	logins *throttle
}

// transactions reads transactions from Temporal, then from the records.
func (g *Gateway) transactions() transaction.Reader {
	r := transaction.Reader{Client: g.Client, Records: g.Records}
	if g.Config != nil {
		r.Namespace, r.Queue = g.Config.Temporal.Namespace, g.Config.ManagerQueue
	}
	return r
}

// NewHandler returns the gateway's XML-RPC server.
func NewHandler(c client.Client, cfg *config.Manager, log *slog.Logger) *Server {
	return (&Gateway{Client: c, Config: cfg, Log: log}).Server()
}

// ListenGateway serves g on addr (host:port; empty: the manager's
// listen_address and listen_port) until Close, over TLS when the manager's
// gateway has a certificate. g.Realms nil builds the realms from the config
// alone; with authentication on, g.Secret must hold the signing secret the
// manager checks (the manager role loads it once for both).
func ListenGateway(g *Gateway, addr string) (*Listener, error) {
	cfg := g.Config
	if addr == "" {
		host := cfg.ListenAddress
		if host == "" {
			host = config.DefaultListenAddress
		}
		addr = net.JoinHostPort(host, strconv.Itoa(cfg.ListenPort))
	}
	if cfg.Auth.Enabled() {
		if len(g.Secret) == 0 {
			return nil, fmt.Errorf("xml-rpc gateway: authentication is on but no signing secret was given")
		}
		if g.Realms == nil {
			var err error
			if g.Realms, err = realm.Registry(cfg.Auth, nil); err != nil {
				return nil, err
			}
		}
	}
	var tc *tls.Config
	if gw := cfg.Gateway; gw.TLS() {
		secretfile.Check(gw.TLSKeyPath, func(msg string) { g.log().Warn(msg) })
		cert, err := tls.LoadX509KeyPair(gw.TLSCertPath, gw.TLSKeyPath)
		if err != nil {
			return nil, fmt.Errorf("xml-rpc gateway certificate: %w; check gateway.tls_cert_path and gateway.tls_key_path", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return Listen(addr, g.Server(), g.Log, tc)
}

// Server builds the XML-RPC server holding the gateway's methods.
func (g *Gateway) Server() *Server {
	s := NewServer(g.Log)
	g.logins = newThrottle(g.Now, g.log())
	s.Register("request_action", Method{
		Func: g.requestAction,
		Help: `request_action(credentials, request_data) => transaction id.
Starts a release. request_data keys: project (required), action ("build" or
"install", default "install"), env (required for install), one source
selector of trunk (boolean), branch, tag, revision or url, request_id (an
idempotency key: the same request_id from the same user with the same
request returns the same transaction; with another request, fault 4), and from
(a transaction whose build to install instead of building again),
rebuild (boolean: build even if the commit was built before), and the
rollout overrides of relman release: strategy (all-at-once or rolling),
batch ("2" or "25%"), pause (a duration such as "30s") and max_failures
("1" or "10%").
credentials: {username, password} or {token}, with realm (which
authenticator: default the users file) and role (act with only this one of
the user's roles). The authenticated user is recorded as the requester.
Faults: 1 unknown project, 3 credentials rejected, 4 bad request_data,
5 relman could not start the transaction.`,
		Signatures: [][]string{{"string", "struct", "struct"}},
	})
	s.Register("query_transaction", Method{
		Func: g.queryTransaction,
		Help: `query_transaction([credentials,] trans_id) => status word.
STARTED, BUILD_COMPLETED, INSTALL_COMPLETED, REJECTED, BUILD_FAILED,
INSTALL_FAILED or CANCELLED; while a release waits, WAITING (for another
release's lock) or AWAITING_APPROVAL; a rollback ends ROLLBACK_COMPLETED or
ROLLBACK_FAILED. A transaction past the namespace's retention answers from
the manager's closed-transaction record. Faults: 2 unknown transaction,
3 credentials rejected, 6 not allowed to read it, 10 its record does not
verify.`,
		Signatures: [][]string{{"string", "string"}, {"string", "struct", "string"}},
	})
	s.Register("query_history", Method{
		Func: g.queryHistory,
		Help: `query_history([credentials,] trans_id) => [{time, event, detail, ...}].
The transaction's history, oldest first, from its Temporal event history
(past the namespace's retention, from its closed-transaction record); steps
of an activity also carry activity, queue, worker and attempt, and an
ending step took_ms (how long it took, in milliseconds).
Faults: 2 unknown transaction, 8 its record does not verify.`,
		Signatures: [][]string{{"array", "string"}, {"array", "struct", "string"}},
	})
	s.Register("list_projects", Method{
		Func:       g.listProjects,
		Help:       `list_projects(credentials) => [project names]: the projects this manager releases.`,
		Signatures: [][]string{{"array", "struct"}, {"array"}},
	})
	s.Register("list_registrations", Method{
		Func: g.listRegistrations,
		Help: `list_registrations(credentials) => [{role, id, projects, targets, renewed, expires}].
The builders (projects they build) and installer hosts (targets: env =>
named targets) holding a live lease with this manager.`,
		Signatures: [][]string{{"array", "struct"}, {"array"}},
	})
	g.registerApproval(s)
	g.registerRollout(s)
	g.registerCancel(s)
	g.registerTransactions(s)
	g.registerPlan(s)
	return s
}

// projects are the manager's projects, sorted.
func (g *Gateway) projects() []string { return slices.Sorted(maps.Keys(g.Config.Projects)) }

// envs are the manager's environments, sorted.
func (g *Gateway) envs() []string { return slices.Sorted(maps.Keys(g.Config.Environments)) }

func (g *Gateway) log() *slog.Logger {
	if g.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Log
}

// Serve is the manager's XML-RPC gateway as workers.Run starts it
// (workers.Options.Gateway).
func Serve(env workers.GatewayEnv) (workers.Served, error) {
	return ListenGateway(&Gateway{
		Client: env.Client, Config: env.Config, Log: env.Log, Realms: env.Realms, Secret: env.Secret, Records: env.Records,
	}, env.Address)
}
