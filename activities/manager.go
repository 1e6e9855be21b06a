// Package activities holds relman's activities: the manager's plan, the
// builder's build and the installer's install. Each group is a struct
// holding its dependencies; workers register its methods under explicit
// names.
package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/google/uuid"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

// RegistryReader lists the live registrations.
type RegistryReader interface {
	List(ctx context.Context, now time.Time) ([]workflows.Lease, error)
}

// TransactionReader reads another transaction's detail.
type TransactionReader interface {
	Get(ctx context.Context, txid string) (*workflows.Detail, error)
}

// RunFinder counts the other runs of a workflow id (through visibility),
// so a signed start that Temporal was told to run again is refused.
type RunFinder interface {
	OtherRuns(ctx context.Context, workflowID, runID string) (int, error)
}

// Manager holds the manager's activities.
type Manager struct {
	Config *config.Manager
	// Secret checks the gateway's signatures (auth on).
	Secret []byte
	// Realms are the manager's realms (internal/realm): a principal the
	// gateway vouches for must come from one of them, and a realm that is
	// an Authorizer has its say after the policy.
	Realms       *auth.Registry
	Registry     RegistryReader
	Transactions TransactionReader
	// Runs finds earlier runs of a transaction id; nil checks none (tests).
	Runs RunFinder
	// Store is the manager's artifact store (config artifacts); with it,
	// an install from an earlier transaction checks its build is still
	// stored. The manager never reads artifacts' bytes.
	Store artifact.Store
	Now   func() time.Time
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Plan is the Plan activity: it checks who asked (the signature over
// everything that runs, the transaction id, a first run), the request
// against the manager's projects and environments and the live
// registrations, finds the hosts to install on, and adds the environment's
// rules (rollout, lock, approval, webhooks), the request's rollout
// overriding the environment's. Anything missing is a non-retryable
// Rejected error that names it; a rejection carries the environment's
// webhooks, so it is notified too, and who asked as far as it is known.
func (m *Manager) Plan(ctx context.Context, in workflows.PlanInput) (workflows.Plan, error) {
	req := in.Request
	who, signer, err := m.authenticate(ctx, in)
	if err != nil {
		return workflows.Plan{}, m.rejection(req, err, workflows.PlanRejection{})
	}
	rej := workflows.PlanRejection{Requester: req.Requester, Signer: signer}
	if m.Config.Auth.Enabled() {
		rej.Requester = who.ID()
	}
	if req.Rollout != nil {
		if err := req.Rollout.Validate(); err != nil {
			return workflows.Plan{}, m.rejection(req, rejected("the request's %v", err), rej)
		}
	}
	plan, err := m.check(ctx, in, who)
	if err != nil {
		return plan, m.rejection(req, err, rej)
	}
	plan.Signer = signer
	env, ok := m.Config.Environments[req.Env]
	if !ok {
		return plan, nil
	}
	plan.Hooks = hooks(req.Env, env)
	if req.Action != workflows.ActionInstall {
		return plan, nil
	}
	plan.Rollout = env.Rollout.Override(req.Rollout)
	if plan.Rollout.Strategy == rollout.StrategyRolling && plan.Rollout.Batch == "" {
		plan.Rollout.Batch = "1"
	}
	if env.Lock != rollout.LockOff {
		plan.Lock = env.Lock
		plan.LockTimeout = env.LockTimeout
	}
	if env.Approval == rollout.ApprovalRequired {
		plan.Approval = workflows.Approval{Required: true, FourEyes: env.FourEyes, Timeout: env.ApprovalTimeout}
	}
	// Past the fleet limits a release is refused here, naming the limit,
	// rather than running into one of Temporal's halfway.
	if err := plan.CheckLimits(); err != nil {
		return plan, m.rejection(req, rejected("%v", err), rej)
	}
	return plan, nil
}

// rejection adds to a Rejected error what the release keeps of it: who
// asked, and the environment's webhooks to notify.
func (m *Manager) rejection(req workflows.Request, err error, rej workflows.PlanRejection) error {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != workflows.ErrRejected {
		return err
	}
	if env, ok := m.Config.Environments[req.Env]; ok {
		rej.Hooks = hooks(req.Env, env)
	}
	return temporal.NewNonRetryableApplicationError(app.Message(), workflows.ErrRejected, nil, rej)
}

// check is Plan without the environment's rules: the project, action,
// source, environment, who asked, and a builder and hosts for every named
// target.
func (m *Manager) check(ctx context.Context, in workflows.PlanInput, who auth.Principal) (workflows.Plan, error) {
	req := in.Request
	var plan workflows.Plan
	proj, ok := m.Config.Projects[req.Project]
	if !ok {
		return plan, rejected("unknown project %q; this manager knows %s", req.Project, list(keys(m.Config.Projects)))
	}
	switch req.Action {
	case workflows.ActionBuild, workflows.ActionInstall:
	default:
		return plan, rejected("unknown action %q; use build or install", req.Action)
	}
	if err := req.Source.Validate(); err != nil {
		return plan, rejected("%v", err)
	}
	if req.Action == workflows.ActionInstall {
		if req.Env == "" {
			return plan, rejected("an install needs an environment; this manager knows %s", list(keys(m.Config.Environments)))
		}
		if _, ok := m.Config.Environments[req.Env]; !ok {
			return plan, rejected("unknown environment %q; this manager knows %s", req.Env, list(keys(m.Config.Environments)))
		}
	}
	leases, err := m.Registry.List(ctx, m.now())
	if p := registry.Partial(err); p != nil {
		plan.Unanswered, err = p.IDs(), nil
	}
	if err != nil {
		return plan, err
	}
	plan.Principal = who.ID()
	if m.Config.Auth.Enabled() {
		action, env := auth.ActionBuild, ""
		if req.Action == workflows.ActionInstall {
			action, env = auth.ActionInstall, req.Env
		}
		if !m.Config.Allowed(who, action, req.Project, env) {
			where := ""
			if env != "" {
				where = " into environment " + strconv.Quote(env)
			}
			return plan, rejected("user %s (roles %s) may not %s project %q%s; ask an administrator for a policy rule that allows it%s",
				who.ID(), strings.Join(who.Roles, ", "), action, req.Project, where, m.protectedHint(env))
		}
		if err := m.realmAuthorizes(ctx, who, action, req.Project, env); err != nil {
			return plan, err
		}
	}
	plan.BuildTimeout = m.Config.Timeouts.Build
	plan.InstallTimeout = m.Config.Timeouts.Install
	plan.HostTimeout = m.Config.Timeouts.Host
	plan.HeartbeatTimeout = m.Config.Timeouts.Heartbeat
	builder := false
	plan.Targets = slices.Clone(proj.Targets)
	plan.Hosts = map[string][]string{}
	for _, l := range leases {
		switch l.Role {
		case workflows.RoleBuilder:
			if slices.Contains(l.Projects, req.Project) {
				builder = true
			}
		case workflows.RoleInstaller:
			for _, t := range l.Targets[req.Env] {
				if slices.Contains(plan.Targets, t) {
					plan.Hosts[t] = append(plan.Hosts[t], l.ID)
				}
			}
		}
	}
	if req.From != "" {
		if req.Action != workflows.ActionInstall {
			return plan, rejected("installing from transaction %s needs action install, not %s", req.From, req.Action)
		}
		// The build exists already: no builder is needed.
		builder = true
	}
	if !builder {
		return plan, rejected("no builder advertises project %q; start a builder whose config lists it", req.Project)
	}
	if req.Action == workflows.ActionBuild {
		plan.Hosts = nil
		return plan, nil
	}
	var missing []string
	for _, t := range plan.Targets {
		sort.Strings(plan.Hosts[t])
		if len(plan.Hosts[t]) == 0 {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return plan, rejected("no installer host advertises named target %s of project %q in environment %q; start an installer whose config lists it under %s",
			list(missing), req.Project, req.Env, req.Env)
	}
	return plan, nil
}

// Hosts lists every named target of a project and the hosts registered for
// it in an environment, for rollouts that talk to every host (where,
// rollback). Unknown projects and environments are Rejected.
func (m *Manager) Hosts(ctx context.Context, in workflows.HostsInput) (workflows.HostsResult, error) {
	var res workflows.HostsResult
	proj, ok := m.Config.Projects[in.Project]
	if !ok {
		return res, rejected("unknown project %q; this manager knows %s", in.Project, list(keys(m.Config.Projects)))
	}
	env, ok := m.Config.Environments[in.Env]
	if !ok {
		return res, rejected("unknown environment %q; this manager knows %s", in.Env, list(keys(m.Config.Environments)))
	}
	leases, err := m.Registry.List(ctx, m.now())
	if p := registry.Partial(err); p != nil {
		res.Unanswered, err = p.IDs(), nil
	}
	if err != nil {
		return res, err
	}
	// The rules a rollback obeys as a release into env does.
	if env.Lock != rollout.LockOff {
		res.Lock, res.LockTimeout = env.Lock, env.LockTimeout
	}
	if env.Approval == rollout.ApprovalRequired {
		res.Approval = workflows.Approval{Required: true, FourEyes: env.FourEyes, Timeout: env.ApprovalTimeout}
	}
	res.AuthOn = m.Config.Auth.Enabled()
	res.Targets = slices.Clone(proj.Targets)
	res.Hosts = map[string][]string{}
	res.HostTimeout = m.Config.Timeouts.Host
	for _, l := range leases {
		if l.Role != workflows.RoleInstaller {
			continue
		}
		for _, t := range l.Targets[in.Env] {
			if slices.Contains(res.Targets, t) && !slices.Contains(res.Hosts[t], l.ID) {
				res.Hosts[t] = append(res.Hosts[t], l.ID)
			}
		}
	}
	for t := range res.Hosts {
		sort.Strings(res.Hosts[t])
	}
	if len(res.Hosts) == 0 {
		return res, rejected("no installer host advertises any named target of project %q in environment %q", in.Project, in.Env)
	}
	if err := (workflows.Plan{Targets: res.Targets, Hosts: res.Hosts}).CheckLimits(); err != nil {
		return res, rejected("%v", err)
	}
	return res, nil
}

// EarlierBuild returns the build of the transaction req.From, for an
// install that reuses it. It must be a finished build of the same project.
func (m *Manager) EarlierBuild(ctx context.Context, req workflows.Request) (workflows.BuildResult, error) {
	var res workflows.BuildResult
	if m.Transactions == nil {
		return res, rejected("this manager cannot read other transactions")
	}
	d, err := m.Transactions.Get(ctx, req.From)
	if errors.Is(err, transaction.ErrNotFound) {
		return res, rejected("no transaction %s to install from; find builds with `relman list --project %s`", req.From, req.Project)
	}
	if errors.Is(err, transaction.ErrNotGenuine) {
		return res, rejected("cannot install from %v", err)
	}
	if err != nil {
		return res, err
	}
	if d.Request.Project != req.Project {
		return res, rejected("transaction %s built project %q, not %q", req.From, d.Request.Project, req.Project)
	}
	switch d.Status {
	case workflows.StatusBuildCompleted, workflows.StatusInstallCompleted, workflows.StatusInstallFailed:
	default:
		return res, rejected("transaction %s is %s; only a completed build can be installed", req.From, d.Status)
	}
	if len(d.Artifacts) == 0 {
		return res, rejected("transaction %s kept no artifacts", req.From)
	}
	if err := m.stillStored(ctx, req, d); err != nil {
		return res, err
	}
	return workflows.BuildResult{Builder: d.Builder, Commit: d.Commit, Artifacts: d.Artifacts, Steps: d.Steps}, nil
}

// stillStored rejects an install from a transaction whose build is gone
// from the store (pruned, or older than the store's own retention) before
// any host is asked, naming what is missing and how to build it again.
func (m *Manager) stillStored(ctx context.Context, req workflows.Request, d *workflows.Detail) error {
	if m.Store == nil {
		return nil
	}
	var missing []string
	for _, t := range keys(d.Artifacts) {
		a := d.Artifacts[t]
		ok, err := m.Store.Has(ctx, artifact.Ref{Key: a.Key, SHA256: a.SHA256, Size: a.Size})
		if err != nil {
			return fmt.Errorf("check the build of %s in the artifact store: %w", req.From, err)
		}
		if !ok {
			missing = append(missing, fmt.Sprintf("%s (sha256 %s)", t, a.SHA256))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return rejected("the build of transaction %s is no longer in the artifact store %s: %s missing; build that commit again with `relman release %s --revision %s`",
		req.From, m.Store.URL(), strings.Join(missing, ", "), d.Request.Project, d.Commit)
}

// Authorize checks who signed a rollback request, an approval decision or
// a cancel, and that the policy lets them do it. With authentication off
// the claimed name stands. A rollback's start (RunID set) is also checked
// as Plan checks a release's: the signature when the run started, the
// transaction id, and that no other run of it exists. It returns the
// principal's name.
func (m *Manager) Authorize(ctx context.Context, in workflows.AuthorizeInput) (string, error) {
	a := m.Config.Auth
	if !a.Enabled() {
		return in.Claimed, nil
	}
	var who auth.Principal
	switch {
	case in.Signature != nil:
		users, err := auth.Load(a.UsersFile)
		if err != nil {
			return "", err
		}
		who, err = users.Verify(m.Secret, *in.Signature, in.Payload, m.at(in.RunStarted), a.MaxAge)
		if err != nil {
			return "", rejected("%s not authenticated: %v", in.Action, err)
		}
		if err := m.knownRealm(who, in.Action); err != nil {
			return "", err
		}
	case a.Anonymous:
		who = auth.Principal{Name: "anonymous", Roles: []string{"anonymous"}}
	default:
		return "", rejected("%s not authenticated: sign it with a relman token (RELMAN_TOKEN) or use the XML-RPC gateway with credentials", in.Action)
	}
	if in.RunID != "" {
		if err := checkOwnID(in.Transaction); err != nil {
			return "", err
		}
		if err := m.firstRun(ctx, in.Transaction, in.RunID); err != nil {
			return "", err
		}
	}
	action := in.Action
	if action == auth.ActionInstall {
		// Only a Rollback run asks Authorize for install (the name its
		// input has always carried, so managers of either version serve
		// it); the policy checks it as a rollback.
		action = auth.ActionRollback
	}
	if !m.Config.Allowed(who, action, in.Project, in.Env) {
		return "", rejected("user %s (roles %s) may not %s project %q in environment %q%s", who.ID(), strings.Join(who.Roles, ", "), action, in.Project, in.Env, m.protectedHint(in.Env))
	}
	if err := m.realmAuthorizes(ctx, who, action, in.Project, in.Env); err != nil {
		return "", err
	}
	return who.ID(), nil
}

// at is the time a signature is checked at: when the run it starts began
// (Temporal's clock, which no client sets), else now.
func (m *Manager) at(runStarted time.Time) time.Time {
	if !runStarted.IsZero() {
		return runStarted
	}
	return m.now()
}

// authenticate finds who asked and the signer the transaction id is
// scoped to. With auth on, a request must carry a valid signature over
// what its run really got, or be anonymous where the config allows that;
// the name the client claims counts for nothing. With auth off the claim
// stands. Either way the transaction id must be one relman gives: the one
// derived for the request id and this signer, or a uuid. With auth on, a
// second run of a transaction id is refused: its signature was good once.
func (m *Manager) authenticate(ctx context.Context, in workflows.PlanInput) (auth.Principal, string, error) {
	a := m.Config.Auth
	var who auth.Principal
	signer := workflows.ClaimedSigner(in.Request.Requester)
	switch {
	case !a.Enabled():
	case in.Signature == nil && a.Anonymous:
		who = auth.Principal{Name: "anonymous", Roles: []string{"anonymous"}}
	case in.Signature == nil:
		return who, "", rejected("request not authenticated: this manager needs requests signed with a relman token (set RELMAN_TOKEN; an administrator makes one with relman token create) or sent through its XML-RPC gateway with credentials")
	default:
		users, err := auth.Load(a.UsersFile)
		if err != nil {
			return who, "", err
		}
		who, err = users.Verify(m.Secret, *in.Signature, in.Signed().Payload(), m.at(in.RunStarted), a.MaxAge)
		if err != nil {
			return who, "", rejected("request not authenticated: %v", err)
		}
		if err := m.knownRealm(who, "request"); err != nil {
			return who, "", err
		}
		signer = in.Signature.Signer()
	}
	if in.Transaction != "" && in.Workflow != workflows.PlanOnlyWorkflowName {
		if err := m.checkTransactionID(in.Transaction, signer, in.Request.RequestID); err != nil {
			return who, "", err
		}
	}
	if a.Enabled() && in.RunID != "" {
		if err := m.firstRun(ctx, in.Transaction, in.RunID); err != nil {
			return who, "", err
		}
	}
	return who, signer, nil
}

// checkTransactionID refuses a transaction id relman would not have given
// this request: with a request id, the one derived from it for this signer
// on this manager; without, a uuid. So a release started under an id of
// someone's choosing (a lock's, another requester's) goes no further.
func (m *Manager) checkTransactionID(txid, signer, requestID string) error {
	if requestID == "" {
		return checkOwnID(txid)
	}
	if want := workflows.RequestTransactionID(m.Config.ManagerQueue, signer, requestID); txid != want {
		return rejected("transaction id %q is not the one relman gives request id %q of this requester; send request ids with relman release --request-id or the gateway's request_id, never as a workflow id", txid, requestID)
	}
	return nil
}

// checkOwnID refuses a transaction id that is not a uuid, the ids relman
// gives transactions without a request id.
func checkOwnID(txid string) error {
	if u, err := uuid.Parse(txid); err != nil || u.String() != txid {
		return rejected("transaction id %q is not one relman gives (a uuid, or r-... for a request id); start transactions with relman or the XML-RPC gateway", txid)
	}
	return nil
}

// firstRun refuses a run of a transaction id that has run before: Temporal
// runs an id again when told to (an id reuse policy of AllowDuplicate), and
// the signature of its input was good for one run.
func (m *Manager) firstRun(ctx context.Context, txid, runID string) error {
	if m.Runs == nil {
		return nil
	}
	n, err := m.Runs.OtherRuns(ctx, txid, runID)
	if err != nil {
		return fmt.Errorf("look up earlier runs of %s: %w", txid, err)
	}
	if n > 0 {
		return rejected("transaction %s has run before; a signed request is good for one run, so start a new transaction", txid)
	}
	return nil
}

// knownRealm refuses a principal of a realm this manager does not have,
// though a gateway signed for it: the realm's Authorizer could not be asked,
// and managers sharing a queue should share their realms. The users file's
// principals were checked against the file already.
func (m *Manager) knownRealm(who auth.Principal, what string) error {
	if who.Realm == "" || who.Realm == auth.DefaultRealm {
		return nil
	}
	if _, ok := m.Realms.Lookup(who.Realm); !ok {
		return rejected("%s not authenticated: realm %q is not one of this manager's (%s); managers on one queue need the same auth.realms", what, who.Realm, list(m.Realms.Realms()))
	}
	return nil
}

// realmAuthorizes asks the principal's realm, when it is an Authorizer,
// after the policy allowed the request. Its refusal, or its silence when
// it cannot answer, rejects the request.
func (m *Manager) realmAuthorizes(ctx context.Context, who auth.Principal, action, project, env string) error {
	if who.Realm == "" || m.Realms == nil {
		return nil
	}
	if _, ok := m.Realms.Lookup(who.Realm); !ok {
		// The users file's realm on a manager without one: it has no
		// Authorizer to ask.
		return nil
	}
	if err := m.Realms.Authorize(ctx, who, auth.Request{Action: action, Project: project, Env: env}); err != nil {
		return rejected("user %s may not %s project %q: %v", who.ID(), action, project, err)
	}
	return nil
}

// hooks names the environment's webhooks for a plan, never their URLs.
func hooks(name string, env config.Environment) []workflows.WebhookRef {
	var out []workflows.WebhookRef
	for i, u := range env.Webhooks {
		out = append(out, workflows.WebhookRef{Env: name, Index: i, Name: config.RedactURL(u)})
	}
	return out
}

// protectedHint says why a rule naming every environment was not enough.
func (m *Manager) protectedHint(env string) string {
	if e, ok := m.Config.Environments[env]; ok && e.Protected {
		return fmt.Sprintf(" (environment %q is protected: only a rule that names it counts, a glob such as \"*\" does not)", env)
	}
	return ""
}

func rejected(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), workflows.ErrRejected, nil)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
