package activities_test

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

const (
	tx1 = "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10"
	tx2 = "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a11"
)

// runFinder says how many other runs each workflow id has.
type runFinder map[string]int

func (r runFinder) OtherRuns(_ context.Context, id, _ string) (int, error) { return r[id], nil }

// tokenSigner signs as the CLI does with a user's token.
type tokenSigner struct{ key ed25519.PrivateKey }

func (s tokenSigner) ID() string {
	return auth.TokenSigner(auth.KeyID(s.key.Public().(ed25519.PublicKey)))
}

func (s tokenSigner) SignAt(payload []byte, at time.Time) auth.Signature {
	return auth.SignWithToken(s.key, payload, at)
}

// tokenManager has auth on with bob (deployer) and a token for him.
func tokenManager(t *testing.T) (*activities.Manager, tokenSigner) {
	t.Helper()
	cfg := testManagerConfig()
	cfg.ManagerQueue = workflows.DefaultManagerQueue
	cfg.Auth = config.Auth{UsersFile: filepath.Join(t.TempDir(), "users.yaml"), MaxAge: 10 * time.Minute}
	cfg.Policy = auth.Policy{
		{Roles: []string{"deployer"}, Actions: []string{"build", "install", "cancel", "approve", "read"}, Projects: []string{"*"}, Environments: []string{"*"}},
	}
	f, err := auth.Load(cfg.Auth.UsersFile)
	require.NoError(t, err)
	token, _, err := f.NewToken("bob", []string{"deployer"})
	require.NoError(t, err)
	require.NoError(t, f.Save())
	key, err := auth.ParseToken(token)
	require.NoError(t, err)
	m := &activities.Manager{Config: cfg, Registry: &fakeRegistry{leases: liveLeases()}, Secret: gatewaySecret, Runs: runFinder{},
		Now: func() time.Time { return planNow }}
	return m, tokenSigner{key}
}

// signedPlan is the plan input a Release would give, signed over what it
// runs at planNow.
func signedPlan(s tokenSigner, txid string, req workflows.Request) workflows.PlanInput {
	in := workflows.PlanInput{Request: req, Transaction: txid, Workflow: workflows.ReleaseWorkflowName, RunID: "run-1", RunStarted: planNow}
	sig := s.SignAt(in.Signed().Payload(), planNow)
	in.Signature = &sig
	return in
}

// TestPlanRefusesTransactionIDs: a request id never becomes a workflow id
// as it is; a release under an id relman would not have given its signer
// (another user's, a lock's, the registry's) is rejected before anything
// runs.
func TestPlanRefusesTransactionIDs(t *testing.T) {
	m, bob := tokenManager(t)
	req := install("web", "test")
	withID := func(rid string) workflows.Request { r := req; r.RequestID = rid; return r }
	own := workflows.RequestTransactionID(workflows.DefaultManagerQueue, bob.ID(), "ci-release-42")
	alices := workflows.RequestTransactionID(workflows.DefaultManagerQueue, "token:alicealicealice", "ci-release-42")
	for name, tc := range map[string]struct {
		txid string
		req  workflows.Request
		want string // "" for accepted
	}{
		"a uuid":                           {tx1, req, ""},
		"derived for bob":                  {own, withID("ci-release-42"), ""},
		"derived for alice":                {alices, withID("ci-release-42"), "is not the one relman gives request id"},
		"the request id itself":            {"ci-release-42", withID("ci-release-42"), "is not the one relman gives request id"},
		"a lock's id":                      {"lock-test-site", req, "is not one relman gives"},
		"a lock's id as request id":        {"lock-test-site", withID("lock-test-site"), "is not the one relman gives request id"},
		"the registry's id":                {workflows.DefaultRegistryID, req, "is not one relman gives"},
		"a uuid in capitals":               {strings.ToUpper(tx1), req, "is not one relman gives"},
		"derived on another manager queue": {workflows.RequestTransactionID("relman-other", bob.ID(), "x"), withID("x"), "is not the one relman gives"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := m.Plan(context.Background(), signedPlan(bob, tc.txid, tc.req))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			app := appError(t, err, workflows.ErrRejected, true)
			assert.Contains(t, app.Message(), tc.want)
		})
	}
	assert.True(t, strings.HasPrefix(own, "r-"))
	assert.NotEqual(t, own, alices, "one request id names different transactions for different requesters")
}

// TestSignatureCoversWhatRuns: a field changed after signing (the
// environment, the source, a timeout, the rollout) breaks the signature;
// an expired one is refused, checked at the run's start, not at the time
// the plan happens to run.
func TestSignatureCoversWhatRuns(t *testing.T) {
	m, bob := tokenManager(t)
	req := install("web", "test")
	for name, change := range map[string]func(*workflows.PlanInput){
		"environment":       func(in *workflows.PlanInput) { in.Request.Env = "prod" },
		"source":            func(in *workflows.PlanInput) { in.Request.Source.Branch = "evil" },
		"from":              func(in *workflows.PlanInput) { in.Request.From = tx2 },
		"build timeout":     func(in *workflows.PlanInput) { in.BuildTimeout = 240 * time.Hour },
		"install timeout":   func(in *workflows.PlanInput) { in.InstallTimeout = time.Hour },
		"host timeout":      func(in *workflows.PlanInput) { in.HostTimeout = time.Hour },
		"rebuild":           func(in *workflows.PlanInput) { in.Request.Rebuild = true },
		"another workflow":  func(in *workflows.PlanInput) { in.Workflow = workflows.RollbackWorkflowName },
		"run started later": func(in *workflows.PlanInput) { in.RunStarted = planNow.Add(auth.SignatureTTL + time.Minute) },
	} {
		t.Run(name, func(t *testing.T) {
			in := signedPlan(bob, tx1, req)
			change(&in)
			_, err := m.Plan(context.Background(), in)
			app := appError(t, err, workflows.ErrRejected, true)
			assert.Contains(t, app.Message(), "not authenticated")
		})
	}
	// Planned long after the run started (no manager was up): the
	// signature is judged at the start.
	m.Now = func() time.Time { return planNow.Add(time.Hour) }
	_, err := m.Plan(context.Background(), signedPlan(bob, tx1, req))
	require.NoError(t, err)
}

// TestSecondRunRefused: the same signed input started again under the same
// id (--id-reuse-policy AllowDuplicate) is refused: a signature is good
// for one run.
func TestSecondRunRefused(t *testing.T) {
	m, bob := tokenManager(t)
	m.Runs = runFinder{tx1: 1}
	_, err := m.Plan(context.Background(), signedPlan(bob, tx1, install("web", "test")))
	app := appError(t, err, workflows.ErrRejected, true)
	assert.Contains(t, app.Message(), "has run before")
	_, err = m.Plan(context.Background(), signedPlan(bob, tx2, install("web", "test")))
	require.NoError(t, err)

	// A rollback's start is checked the same way.
	rb := workflows.RollbackInput{Request: workflows.Request{Project: "web", Env: "test"}}
	payload := workflows.RollbackStart(tx1, rb).Payload()
	sig := bob.SignAt(payload, planNow)
	_, err = m.Authorize(context.Background(), workflows.AuthorizeInput{Transaction: tx1, Action: "install", Project: "web", Env: "test",
		Payload: payload, Signature: &sig, RunID: "run-2", RunStarted: planNow})
	app = appError(t, err, workflows.ErrRejected, true)
	assert.Contains(t, app.Message(), "has run before")
}

// TestRejectionSaysWhoAsked: a rejected plan says who asked only when the
// request authenticated.
func TestRejectionSaysWhoAsked(t *testing.T) {
	m, bob := tokenManager(t)
	in := signedPlan(bob, tx1, install("web", "staging"))
	_, err := m.Plan(context.Background(), in)
	app := appError(t, err, workflows.ErrRejected, true)
	var rej workflows.PlanRejection
	require.NoError(t, app.Details(&rej))
	assert.Equal(t, "bob", rej.Requester)
	assert.Equal(t, bob.ID(), rej.Signer)

	in = signedPlan(bob, tx1, install("web", "test"))
	in.Request.Requester = "alice"
	in.Signature.Value = "forged"
	_, err = m.Plan(context.Background(), in)
	app = appError(t, err, workflows.ErrRejected, true)
	rej = workflows.PlanRejection{}
	require.NoError(t, app.Details(&rej))
	assert.Empty(t, rej.Requester, "the claimed alice is not who asked")
	assert.Empty(t, rej.Signer)
}

// TestProtectedEnvironment: protected means approval with four eyes, and a
// rule for every environment ("*") does not let anyone install, approve
// or cancel there; a rule naming it does.
func TestProtectedEnvironment(t *testing.T) {
	m, bob := tokenManager(t)
	m.Config.Default()
	prod := install("web", "prod")
	_, err := m.Plan(context.Background(), signedPlan(bob, tx1, prod))
	app := appError(t, err, workflows.ErrRejected, true)
	assert.Contains(t, app.Message(), "may not install")
	assert.Contains(t, app.Message(), `environment "prod" is protected`)
	_, err = m.Authorize(context.Background(), workflows.AuthorizeInput{Transaction: tx1, Action: "cancel", Project: "web", Env: "prod",
		Payload: []byte("x"), Signature: ptr(bob.SignAt([]byte("x"), planNow))})
	appError(t, err, workflows.ErrRejected, true)

	m.Config.Policy = append(m.Config.Policy, auth.Rule{Roles: []string{"deployer"}, Actions: []string{"install"}, Projects: []string{"*"}, Environments: []string{"prod"}})
	plan, err := m.Plan(context.Background(), signedPlan(bob, tx1, prod))
	require.NoError(t, err)
	assert.True(t, plan.Approval.Required, "protected implies approval")
	assert.True(t, plan.Approval.FourEyes, "protected implies four eyes")
	// Reading is not changing: a glob rule still lets one read.
	assert.True(t, m.Config.Allowed(auth.Principal{Name: "bob", Roles: []string{"deployer"}}, auth.ActionRead, "web", "prod"))
}

func ptr[T any](v T) *T { return &v }
