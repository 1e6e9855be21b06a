package workflows

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/relman/relman/internal/auth"
)

// Status words of a release that waits: for the lock of its environment's
// named targets, or for a person to approve it. Neither is final.
const (
	StatusWaiting          Status = "WAITING"
	StatusAwaitingApproval Status = "AWAITING_APPROVAL"
)

// InstallSkipped: the install was not attempted (a rolling release stopped
// before its batch) or its host was unreachable under `unreachable: skip`.
const InstallSkipped InstallState = "skipped"

// Names of the safe-rollout workflows, signals, updates and activities. They
// are part of stored histories: never rename them.
const (
	LockWorkflowName     = "Lock"
	PlanOnlyWorkflowName = "PlanOnly"

	ApproveUpdate = "approve"
	RejectUpdate  = "reject"

	// LockRequestSignal and LockReleaseSignal go to a Lock workflow;
	// LockAnswerSignal goes back to the release that asked.
	LockRequestSignal = "lock-request"
	LockReleaseSignal = "lock-release"
	LockAnswerSignal  = "lock-answer"
	LockQuery         = "lock"

	RequestLockActivity    = "RequestLock"
	LockHolderOpenActivity = "LockHolderOpen"
	NotifyActivity         = "Notify"
)

// Rollout strategies, unreachable-host policies and lock modes, as the
// manager config and the CLI spell them.
const (
	StrategyAllAtOnce = "all-at-once"
	StrategyRolling   = "rolling"

	UnreachableFail = "fail"
	UnreachableSkip = "skip"

	LockWait   = "wait"
	LockRefuse = "refuse"
	LockOff    = "off"
)

// DefaultApprovalTimeout ends a release REJECTED when nobody decides.
const DefaultApprovalTimeout = 24 * time.Hour

// Rollout says how a release goes through the hosts of an environment. The
// zero value is all-at-once with no failure allowed: the original behavior.
type Rollout struct {
	Strategy string `json:"strategy,omitempty"` // all-at-once (default) or rolling
	// Batch is hosts per batch of a rolling release: a count ("2") or a
	// share of the hosts ("25%"). Default 1.
	Batch string `json:"batch,omitempty"`
	// Pause between batches.
	Pause time.Duration `json:"pause,omitempty"`
	// MaxFailures is how many failed hosts the release tolerates before it
	// stops: a count or a share ("10%"). Default 0.
	MaxFailures string `json:"max_failures,omitempty"`
	// Unreachable: a host that does not pick up its install in time is
	// failed (default) or skipped.
	Unreachable  string `json:"unreachable,omitempty"`
	AutoRollback bool   `json:"auto_rollback,omitempty"`
}

// Legacy reports whether r is the behavior releases had before rollouts:
// every install at once, any failure fails the release.
func (r Rollout) Legacy() bool {
	return (r.Strategy == "" || r.Strategy == StrategyAllAtOnce) &&
		(r.MaxFailures == "" || r.MaxFailures == "0") &&
		(r.Unreachable == "" || r.Unreachable == UnreachableFail) &&
		!r.AutoRollback
}

// Validate reports a rollout a release cannot follow.
func (r Rollout) Validate() error {
	var bad []string
	switch r.Strategy {
	case "", StrategyAllAtOnce, StrategyRolling:
	default:
		bad = append(bad, fmt.Sprintf("strategy %q is not all-at-once or rolling", r.Strategy))
	}
	if r.Batch != "" {
		if n, _, err := parseCount(r.Batch); err != nil {
			bad = append(bad, "batch "+err.Error())
		} else if n == 0 {
			bad = append(bad, fmt.Sprintf("batch %q is zero; use at least 1 or 1%%", r.Batch))
		}
	}
	if _, _, err := parseCount(r.MaxFailures); r.MaxFailures != "" && err != nil {
		bad = append(bad, "max_failures "+err.Error())
	}
	switch r.Unreachable {
	case "", UnreachableFail, UnreachableSkip:
	default:
		bad = append(bad, fmt.Sprintf("unreachable %q is not fail or skip", r.Unreachable))
	}
	if r.Pause < 0 {
		bad = append(bad, fmt.Sprintf("pause %s is negative", r.Pause))
	}
	if len(bad) > 0 {
		return fmt.Errorf("rollout: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Override returns r with the fields o sets.
func (r Rollout) Override(o *Rollout) Rollout {
	if o == nil {
		return r
	}
	if o.Strategy != "" {
		r.Strategy = o.Strategy
	}
	if o.Batch != "" {
		r.Batch = o.Batch
	}
	if o.Pause != 0 {
		r.Pause = o.Pause
	}
	if o.MaxFailures != "" {
		r.MaxFailures = o.MaxFailures
	}
	if o.Unreachable != "" {
		r.Unreachable = o.Unreachable
	}
	if o.AutoRollback {
		r.AutoRollback = true
	}
	return r
}

// Batches splits sorted hosts into the batches r goes through: one batch
// for all-at-once.
func (r Rollout) Batches(hosts []string) [][]string {
	if len(hosts) == 0 {
		return nil
	}
	if r.Strategy != StrategyRolling {
		return [][]string{append([]string(nil), hosts...)}
	}
	size := count(r.Batch, len(hosts), 1, true)
	var out [][]string
	for i := 0; i < len(hosts); i += size {
		out = append(out, append([]string(nil), hosts[i:min(i+size, len(hosts))]...))
	}
	return out
}

// MaxFailureCount is how many of total hosts may fail before the release
// stops.
func (r Rollout) MaxFailureCount(total int) int {
	return count(r.MaxFailures, total, 0, false)
}

// count reads "N" or "P%" against total; a share rounds up for batches
// (never an empty batch) and down for failures (never more than asked).
func count(s string, total, def int, up bool) int {
	if s == "" {
		return def
	}
	n, pct, err := parseCount(s)
	if err != nil {
		return def
	}
	if pct {
		if up {
			n = (total*n + 99) / 100
		} else {
			n = total * n / 100
		}
	}
	if up && n < 1 {
		n = 1
	}
	return n
}

func parseCount(s string) (n int, pct bool, err error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err = strconv.Atoi(v)
	if err != nil || n < 0 || pct && n > 100 {
		return 0, false, fmt.Errorf("%q is not a count (2) or a percentage (25%%)", s)
	}
	return n, pct, nil
}

// Approval is an environment's rule for releases into it.
type Approval struct {
	Required bool `json:"required,omitempty"`
	// FourEyes: the requester cannot approve their own release.
	FourEyes bool          `json:"four_eyes,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"` // default 24h
}

// ApprovalDecision is the argument of the approve and reject updates.
type ApprovalDecision struct {
	// By is who decides: the caller's identity. With authentication on the
	// manager replaces it with whoever signed the decision.
	By        string          `json:"by"`
	Comment   string          `json:"comment,omitempty"`
	Signature *auth.Signature `json:"signature,omitempty"`
}

// DecisionPayload is what a decision's signature covers; deterministic like
// SignedPayload.
//
//workflowcheck:ignore
func DecisionPayload(txid string, approve bool, d ApprovalDecision) []byte {
	d.Signature = nil
	b, _ := json.Marshal(struct {
		Transaction string           `json:"transaction"`
		Approve     bool             `json:"approve"`
		Decision    ApprovalDecision `json:"decision"`
	}{txid, approve, d})
	return b
}

// ApprovalRecord is the decision a release got, in its detail.
type ApprovalRecord struct {
	Decision string    `json:"decision"` // approved, rejected, timed out
	By       string    `json:"by,omitempty"`
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
}

// RollbackRecord is one (host, target) put back after a failed rollout.
type RollbackRecord struct {
	Host   string    `json:"host"`
	Target string    `json:"target"`
	OK     bool      `json:"ok"`
	Error  string    `json:"error,omitempty"`
	Time   time.Time `json:"time"`
}

// LockID is the id of the Lock workflow of one (environment, named target)
// of the manager on queue: lock-<env>-<target> for the default manager, and
// prefixed with the queue for others, since managers sharing a namespace
// may well name their environments alike.
func LockID(queue, env, target string) string {
	id := "lock-" + env + "-" + target
	if queue != "" && queue != DefaultManagerQueue {
		id = queue + "-" + id
	}
	return id
}

// LockRequest asks a Lock workflow for the lock on behalf of a release.
type LockRequest struct {
	Lock        string `json:"lock"`
	Env         string `json:"env"`
	Target      string `json:"target"`
	Transaction string `json:"transaction"`
	// Refuse: answer refused at once when another release holds it.
	Refuse bool `json:"refuse,omitempty"`
}

// LockRelease gives a lock back, or leaves its queue.
type LockRelease struct {
	Transaction string `json:"transaction"`
}

// LockAnswer is what a Lock workflow tells a release that asked.
type LockAnswer struct {
	Lock    string `json:"lock"`
	Granted bool   `json:"granted,omitempty"`
	Refused bool   `json:"refused,omitempty"`
	// Holder is the transaction holding the lock when it is not granted.
	Holder string `json:"holder,omitempty"`
	// Position in the queue, 1 for next.
	Position int `json:"position,omitempty"`
}

// LockState is a Lock workflow's input (carried over continue-as-new) and
// its query answer.
type LockState struct {
	Env    string   `json:"env"`
	Target string   `json:"target"`
	Holder string   `json:"holder,omitempty"`
	Queue  []string `json:"queue,omitempty"`
	// CheckEvery is how often the lock checks that its holder is still
	// running; default 1m.
	CheckEvery time.Duration `json:"check_every,omitempty"`
	// IdleFor ends the lock workflow after this long unheld; default 10m.
	IdleFor time.Duration `json:"idle_for,omitempty"`
}

// PlanRejection rides as the details of a Rejected plan error, so a release
// rejected at planning still notifies its environment's webhooks.
type PlanRejection struct {
	Webhooks []string `json:"webhooks,omitempty"`
}

// NotifyInput is the Notify activity's argument: one webhook, one payload.
type NotifyInput struct {
	URL          string       `json:"url"`
	Notification Notification `json:"notification"`
}

// Notification is the JSON body POSTed to an environment's webhooks.
type Notification struct {
	Transaction string       `json:"transaction"`
	Project     string       `json:"project"`
	Env         string       `json:"env,omitempty"`
	Action      Action       `json:"action"`
	Status      Status       `json:"status"`
	Reason      string       `json:"reason,omitempty"`
	Requester   string       `json:"requester,omitempty"`
	Commit      string       `json:"commit,omitempty"`
	Hosts       HostsSummary `json:"hosts"`
	Time        time.Time    `json:"time"`
}

// HostsSummary counts a release's (host, target) installs by state.
type HostsSummary struct {
	Total      int `json:"total"`
	Installed  int `json:"installed"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
	Pending    int `json:"pending"`
	RolledBack int `json:"rolled_back"`
}

// PlanOnlyResult is what `relman plan` shows: the plan and its batches.
type PlanOnlyResult struct {
	Request Request    `json:"request"`
	Plan    Plan       `json:"plan"`
	Batches [][]string `json:"batches,omitempty"`
}
