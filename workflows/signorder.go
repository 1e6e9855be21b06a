package workflows

import (
	"time"

	"github.com/relman/relman/auth"
)

// SignOrdersActivity signs install orders with the manager's order key, in
// the manager, so the key stays out of the workflows. Not yet called by
// the Release workflow (issue 23).
const SignOrdersActivity = "SignOrders"

// OrderAction values of auth.Order.Action.
const (
	OrderInstall = "install"
)

// SignOrdersInput are the orders to sign, without id, namespace, queue or
// expiry (the signing activity sets them), and how long they stay valid.
type SignOrdersInput struct {
	Orders []auth.Order  `json:"orders"`
	Valid  time.Duration `json:"valid"`
}

// SignOrdersResult are the signed orders, in the order asked.
type SignOrdersResult struct {
	Orders []auth.SignedOrder `json:"orders"`
}
