package workflows

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/relman/relman/auth"
)

// SignedStart is what the signature of a transaction's start covers: the
// workflow it starts, its id, and every field of its input that changes
// what runs (source, environment, action, from, rebuild, rollout
// overrides, the request id, timeouts, a rollback's target). The manager
// verifies it against the input the workflow really got, so changing any
// of them breaks the signature.
type SignedStart struct {
	Workflow       string        `json:"workflow"`
	Transaction    string        `json:"transaction"`
	Request        Request       `json:"request"`
	BuildTimeout   time.Duration `json:"build_timeout,omitempty"`
	InstallTimeout time.Duration `json:"install_timeout,omitempty"`
	HostTimeout    time.Duration `json:"host_timeout,omitempty"`
	To             string        `json:"to,omitempty"`
}

// ReleaseStart is what signs the start of Release txid with input in.
func ReleaseStart(txid string, in ReleaseInput) SignedStart {
	return SignedStart{Workflow: ReleaseWorkflowName, Transaction: txid, Request: in.Request,
		BuildTimeout: in.BuildTimeout, InstallTimeout: in.InstallTimeout, HostTimeout: in.HostTimeout}
}

// RollbackStart is what signs the start of Rollback txid with input in.
func RollbackStart(txid string, in RollbackInput) SignedStart {
	req := in.Request
	req.Action = ActionRollback
	return SignedStart{Workflow: RollbackWorkflowName, Transaction: txid, Request: req, HostTimeout: in.HostTimeout, To: in.To}
}

// Payload is the bytes signed. encoding/json writes a struct's fields in
// declaration order and sorts map keys, so the bytes are the same on every
// replay and on both sides (workflowcheck cannot see that).
//
//workflowcheck:ignore
func (s SignedStart) Payload() []byte {
	b, _ := json.Marshal(s)
	return append([]byte("relman-start-v1\n"), b...)
}

// RequestTransactionID is the transaction id of request id requestID sent
// by signer (auth.Signature.Signer, or ClaimedSigner) to the manager on
// queue: "r-" and 32 hex digits of a sha256, so a request id never becomes
// a workflow id as it is. No request id can name one of relman's own
// workflows (locks, the registry, plans) or the transaction of another
// requester or another manager; the same key from the same requester names
// the same transaction, which makes it an idempotency key.
func RequestTransactionID(queue, signer, requestID string) string {
	h := sha256.Sum256([]byte("relman-request-id\x00" + queue + "\x00" + signer + "\x00" + requestID))
	return RequestIDPrefix + hex.EncodeToString(h[:16])
}

// RequestIDPrefix starts the transaction id of every request with a
// request id.
const RequestIDPrefix = "r-"

// ClaimedSigner names an unsigned requester by the name they claim, which
// is all there is when authentication is off (or for anonymous requests).
func ClaimedSigner(requester string) string { return "user:" + requester }

// SameRequest reports whether a and b ask for the same thing, whoever
// asked: a retry with a request id must ask for what the first try did.
// Compared as JSON: one of them has been through a history already.
func SameRequest(a, b Request) bool {
	a.Requester, b.Requester = "", ""
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// DecisionPayload is what an approval decision's signature covers;
// deterministic like SignedPayload.
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

// AuthorizeInput is the Authorize activity's argument: who signed a
// rollback or an approval decision, for the manager to check.
type AuthorizeInput struct {
	Transaction string          `json:"transaction"`
	Action      string          `json:"action"` // an auth action: install, approve
	Project     string          `json:"project"`
	Env         string          `json:"env,omitempty"`
	Payload     []byte          `json:"payload"` // what the signature covers
	Signature   *auth.Signature `json:"signature,omitempty"`
	// Claimed is the name the client gave; it stands when auth is off.
	Claimed string `json:"claimed,omitempty"`
	// RunID and RunStarted are set when the signature starts a
	// transaction (a rollback): it must have been good when the run
	// started, and no other run of the transaction id may exist.
	RunID      string    `json:"run_id,omitempty"`
	RunStarted time.Time `json:"run_started,omitempty"`
}
