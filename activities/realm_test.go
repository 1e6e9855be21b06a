package activities_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// directory stands for a realm whose users the manager cannot look up (LDAP,
// say): the manager never calls it, it trusts the gateway's signature.
type directory struct{}

func (directory) Authenticate(context.Context, auth.Credentials) (auth.Principal, error) {
	return auth.Principal{}, auth.ErrDenied
}

// frozen refuses every install into prod.
type frozen struct{ directory }

func (frozen) Authorize(_ context.Context, _ auth.Principal, r auth.Request) error {
	if r.Env == "prod" {
		return errors.New("a change freeze is on for prod")
	}
	return nil
}

var gatewaySecret = []byte("0123456789abcdef0123456789abcdef")

func realmManager(t *testing.T) *activities.Manager {
	t.Helper()
	cfg := testManagerConfig()
	cfg.Auth = config.Auth{UsersFile: filepath.Join(t.TempDir(), "users.yaml"), MaxAge: 10 * time.Minute}
	// prod is protected: only a rule naming it lets anyone install there.
	cfg.Policy = auth.Policy{{Roles: []string{"deployer"}, Actions: []string{"build", "install", "approve"}, Projects: []string{"*"}, Environments: []string{"*", "prod"}}}
	realms := &auth.Registry{}
	if err := realms.Register("corp", directory{}); err != nil {
		t.Fatal(err)
	}
	if err := realms.Register("frozen", frozen{}); err != nil {
		t.Fatal(err)
	}
	return &activities.Manager{Config: cfg, Registry: &fakeRegistry{leases: liveLeases()}, Secret: gatewaySecret, Realms: realms, Now: func() time.Time { return planNow }}
}

// The manager takes a principal of another realm, with its roles, from the
// gateway's signature alone; and only from a valid one.
func TestPlanTrustsSignedRealmAndRoles(t *testing.T) {
	m := realmManager(t)
	sign := func(p auth.Principal, txid string, req workflows.Request) *auth.Signature {
		s := auth.SignAsGateway(gatewaySecret, p, workflows.ReleaseStart(txid, workflows.ReleaseInput{Request: req}).Payload(), planNow)
		return &s
	}
	req := install("web", "prod")
	alice := auth.Principal{Name: "alice", Roles: []string{"deployer"}, Realm: "corp"}
	tests := map[string]struct {
		sig  *auth.Signature
		want string // the principal, or a substring of the rejection
		ok   bool
	}{
		"ldap user, signed": {sig: sign(alice, tx1, req), want: "alice@corp", ok: true},
		"roles forged": {sig: func() *auth.Signature {
			s := sign(auth.Principal{Name: "alice", Roles: []string{"tester"}, Realm: "corp"}, tx1, req)
			s.Roles = []string{"deployer"}
			return s
		}(), want: "request not authenticated"},
		"realm forged": {sig: func() *auth.Signature {
			s := sign(alice, tx1, req)
			s.Realm = "frozen"
			return s
		}(), want: "request not authenticated"},
		"another transaction": {sig: sign(alice, tx2, req), want: "request not authenticated"},
		"realm this manager lacks": {sig: sign(auth.Principal{Name: "alice", Roles: []string{"deployer"}, Realm: "nis"}, tx1, req),
			want: `realm "nis" is not one of this manager's ("corp", "frozen")`},
		"role the policy does not know": {sig: sign(auth.Principal{Name: "alice", Roles: []string{"tester"}, Realm: "corp"}, tx1, req),
			want: "user alice@corp (roles tester) may not install"},
		"realm's authorizer refuses": {sig: sign(auth.Principal{Name: "alice", Roles: []string{"deployer"}, Realm: "frozen"}, tx1, req),
			want: `realm "frozen" refuses: a change freeze is on for prod`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			plan, err := m.Plan(context.Background(), workflows.PlanInput{Request: req, Transaction: tx1, Signature: tc.sig})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if plan.Principal != tc.want {
					t.Fatalf("principal %q, want %q", plan.Principal, tc.want)
				}
				return
			}
			app := appError(t, err, workflows.ErrRejected, true)
			if !strings.Contains(app.Message(), tc.want) {
				t.Fatalf("%q does not say %q", app.Message(), tc.want)
			}
		})
	}
}

// An approval signed for a user of another realm is recorded under the
// realm-qualified name, so four eyes never takes alice@corp for alice.
func TestAuthorizeApprovalFromRealm(t *testing.T) {
	m := realmManager(t)
	payload := []byte(`{"transaction":"tx-1","approve":true}`)
	s := auth.SignAsGateway(gatewaySecret, auth.Principal{Name: "carol", Roles: []string{"deployer"}, Realm: "corp"}, payload, planNow)
	who, err := m.Authorize(context.Background(), workflows.AuthorizeInput{Transaction: "tx-1", Action: "approve", Project: "web", Env: "test", Payload: payload, Signature: &s, Claimed: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if who != "carol@corp" {
		t.Fatalf("decided by %q, want carol@corp", who)
	}
	s = auth.SignAsGateway(gatewaySecret, auth.Principal{Name: "carol", Roles: []string{"deployer"}, Realm: "frozen"}, payload, planNow)
	_, err = m.Authorize(context.Background(), workflows.AuthorizeInput{Transaction: "tx-1", Action: "approve", Project: "web", Env: "prod", Payload: payload, Signature: &s})
	app := appError(t, err, workflows.ErrRejected, true)
	if !strings.Contains(app.Message(), "a change freeze is on for prod") {
		t.Fatalf("%q does not give the realm's reason", app.Message())
	}
}
