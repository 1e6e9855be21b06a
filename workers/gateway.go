package workers

import (
	"errors"
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/transaction"
)

// GatewayEnv is what a manager hands the gateway it serves: its Temporal
// client and config, its log, the realms and signing secret it shares
// with its activities, and the records that answer for transactions
// Temporal no longer has.
type GatewayEnv struct {
	Client  client.Client
	Config  *config.Manager
	Log     *slog.Logger
	Realms  *auth.Registry
	Secret  []byte
	Records transaction.Records
	// Address overrides the config's listen address (host:port; port 0
	// for any free one); empty: the config's.
	Address string
}

// Served is a gateway listening: its URL, and Close, which stops it.
type Served interface {
	URL() string
	Close() error
}

// Gateway starts a manager's gateway; it returns once the gateway listens
// (a port that cannot be opened is an error that stops the role).
type Gateway func(GatewayEnv) (Served, error)

// errNoGateway stops a manager whose config serves a gateway when the
// binary brought none.
var errNoGateway = errors.New("the config serves an XML-RPC gateway but this binary has none: pass workers.Options.Gateway (surface/xmlrpc.Serve), or set gateway.off: true")
