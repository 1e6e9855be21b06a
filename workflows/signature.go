package workflows

import (
	"encoding/json"

	"github.com/relman/relman/internal/auth"
)

// SignedPayload is what a request's signature covers: the transaction id
// and the request, so a signature is good for exactly one transaction.
// encoding/json writes a struct's fields in declaration order, so the bytes
// are the same on every replay (workflowcheck cannot see that).
//
//workflowcheck:ignore
func SignedPayload(txid string, req Request) []byte {
	b, _ := json.Marshal(struct {
		Transaction string  `json:"transaction"`
		Request     Request `json:"request"`
	}{txid, req})
	return b
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
}
