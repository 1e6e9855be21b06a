package xmlrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/relman/relman/workers"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/realm"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// RequestKeys are the keys request_action accepts in request_data.
var RequestKeys = []string{"action", "branch", "env", "from", "project", "rebuild", "request_id", "revision", "tag", "trunk", "url"}

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
		r.Namespace = g.Config.Temporal.Namespace
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
(a transaction whose build to install instead of building again), and
rebuild (boolean: build even if the commit was built before).
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
of an activity also carry activity, queue, worker and attempt.
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
	return s
}

// requester reads the username from credentials. Nothing else in them is
// looked at, kept or logged: they may hold a password.
func requester(cred any) (string, error) {
	m, ok := cred.(map[string]any)
	if !ok {
		return "", Faultf(CodeInvalidParams, "credentials must be a struct, not %s", TypeName(cred))
	}
	u, present := m["username"]
	if !present {
		return "", nil
	}
	s, ok := u.(string)
	if !ok {
		return "", Faultf(CodeCredentialsRejected, "credentials username must be a string, not %s", TypeName(u))
	}
	if len(s) > 128 || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "", Faultf(CodeCredentialsRejected, "credentials username must be at most 128 printable characters")
	}
	return s, nil
}

const anonymous = "anonymous"

// credentialKeys are the credentials' keys the gateway reads besides
// username; other keys are ignored, as the seed's plugins ignored what they
// did not know.
var credentialKeys = []string{"password", "token", "realm", "role"}

// authenticate reads credentials: {username, password} or {token}, with
// realm and role. With authentication off the username is taken as it is,
// as the seed did. With it on, every wrong credential gets the same fault,
// so nobody learns which user names exist; no credentials at all pass as
// "anonymous" only where the config allows it.
func (g *Gateway) authenticate(ctx context.Context, cred any) (auth.Principal, error) {
	name, err := requester(cred)
	if err != nil {
		return auth.Principal{}, err
	}
	a := g.Config.Auth
	if !a.Enabled() {
		return auth.Principal{Name: name}, nil
	}
	m, _ := cred.(map[string]any)
	c := auth.Credentials{Username: name}
	for _, k := range credentialKeys {
		v, present := m[k]
		if !present || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return auth.Principal{}, Faultf(CodeCredentialsRejected, "credentials %s must be a string, not %s", k, TypeName(v))
		}
		switch k {
		case "password":
			c.Password = s
		case "token":
			c.Token = s
		case "realm":
			c.Realm = s
		case "role":
			c.Role = s
		}
	}
	rejected := Faultf(CodeCredentialsRejected, "credentials rejected; send {username, password} or {token}")
	addr, user := remote(ctx), throttleUser(c.Username, c.Realm)
	if c.Token != "" {
		user = ""
	}
	if c.Username == "" && c.Password == "" && c.Token == "" {
		if a.Anonymous {
			return auth.Principal{Name: anonymous, Roles: []string{anonymous}}, nil
		}
		g.logins.failed("", addr)
		return auth.Principal{}, rejected
	}
	// Locked out: refused before any password is checked.
	if err := g.logins.check(user, addr); err != nil {
		return auth.Principal{}, err
	}
	p, err := g.Realms.Authenticate(ctx, c)
	var unknownRealm *auth.UnknownRealmError
	var role *auth.RoleError
	var failed *auth.RealmError
	switch {
	case err == nil:
		g.logins.succeeded(user)
		return p, nil
	case errors.Is(err, auth.ErrDenied):
		g.logins.failed(user, addr)
		return auth.Principal{}, rejected
	case errors.As(err, &unknownRealm), errors.As(err, &role):
		return auth.Principal{}, Faultf(CodeCredentialsRejected, "%v", err)
	case errors.As(err, &failed):
		// The caller learns which realm and server failed; the log gets
		// the cause as well.
		g.log().Warn("login refused: realm failed", "realm", failed.Realm, "err", failed.Detail())
		return auth.Principal{}, Faultf(CodeInternal, "%v", err)
	}
	g.log().Error("login refused", "err", err)
	return auth.Principal{}, Faultf(CodeInternal, "could not check the credentials; try again later")
}

// allowed applies the manager's policy, then the Authorizer of the
// principal's realm, if it has one.
func (g *Gateway) allowed(ctx context.Context, p auth.Principal, action, project, env string) error {
	if !g.Config.Allowed(p, action, project, env) {
		msg := ""
		if e, ok := g.Config.Environments[env]; ok && e.Protected {
			msg = fmt.Sprintf(" (environment %q is protected: only a policy rule that names it counts)", env)
		}
		return Faultf(CodeForbidden, "user %s may not %s project %q%s%s", p.ID(), action, project, inEnv(env), msg)
	}
	if p.Realm == "" {
		// anonymous: no realm vouched for it, so none has a say.
		return nil
	}
	err := g.Realms.Authorize(ctx, p, auth.Request{Action: action, Project: project, Env: env})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrUnavailable):
		g.log().Warn("request refused: realm could not authorize", "realm", p.Realm, "err", err)
		return Faultf(CodeInternal, "realm %q could not authorize the request now; try again later", p.Realm)
	}
	return Faultf(CodeForbidden, "user %s may not %s project %q%s: %v", p.ID(), action, project, inEnv(env), err)
}

// mayRead checks the principal may read the transaction (auth on).
func (g *Gateway) mayRead(ctx context.Context, p auth.Principal, id string) error {
	if !g.Config.Auth.Enabled() {
		return nil
	}
	d, err := g.transactions().Get(ctx, id)
	if err != nil && !errors.Is(err, transaction.ErrNotYet) {
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	if d == nil {
		return nil
	}
	if err := g.allowed(ctx, p, auth.ActionRead, d.Request.Project, d.Request.Env); err != nil {
		var f *Fault
		if errors.As(err, &f) && f.Code == CodeForbidden {
			return Faultf(CodeForbidden, "user %s may not read transactions of project %q%s", p.ID(), d.Request.Project, inEnv(d.Request.Env))
		}
		return err
	}
	return nil
}

func inEnv(env string) string {
	if env == "" {
		return ""
	}
	return " in environment " + strconv.Quote(env)
}

func (g *Gateway) requestAction(ctx context.Context, ps []any) (any, error) {
	if len(ps) != 2 {
		return nil, Faultf(CodeInvalidParams, "request_action takes (credentials, request_data); got %d params", len(ps))
	}
	p, err := g.authenticate(ctx, ps[0])
	if err != nil {
		return nil, err
	}
	who := p.ID()
	data, ok := ps[1].(map[string]any)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "request_data must be a struct, not %s", TypeName(ps[1]))
	}
	req, requestID, err := g.parseRequest(data)
	if err != nil {
		return nil, err
	}
	req.Requester = who
	var sign *transaction.Signer
	if g.Config.Auth.Enabled() {
		action, env := auth.ActionBuild, ""
		if req.Action == workflows.ActionInstall {
			action, env = auth.ActionInstall, req.Env
		}
		if err := g.allowed(ctx, p, action, req.Project, env); err != nil {
			return nil, err
		}
		sign = g.signer(p)
	}
	txid, err := transaction.StartSigned(ctx, g.Client, g.Config.ManagerQueue, requestID, req, sign)
	switch {
	case errors.Is(err, transaction.ErrBadRequestID):
		return nil, Faultf(CodeBadRequest, "request_data request_id: %v", err)
	case errors.Is(err, transaction.ErrRequestIDReused):
		return nil, Faultf(CodeBadRequest, "%v", err)
	}
	if err != nil {
		g.log().Warn("xml-rpc request_action: start failed", "project", req.Project, "err", err)
		return nil, Faultf(CodeInternal, "could not start the transaction: %v", err)
	}
	g.log().Info("xml-rpc request_action", "transaction", txid, "project", req.Project, "action", req.Action, "env", req.Env, "requester", who)
	return txid, nil
}

// signer signs for a principal the gateway authenticated; anonymous has no
// realm to vouch for it and goes unsigned (nil).
func (g *Gateway) signer(p auth.Principal) *transaction.Signer {
	if p.Realm == "" {
		return nil
	}
	return &transaction.Signer{ID: auth.GatewaySigner(p), Sign: func(payload []byte) *auth.Signature {
		s := auth.SignAsGateway(g.Secret, p, payload, time.Now())
		return &s
	}}
}

// parseRequest turns request_data into a Request, checking what can be
// checked here; what needs the registry is the workflow's to reject.
func (g *Gateway) parseRequest(data map[string]any) (workflows.Request, string, error) {
	var req workflows.Request
	var unknown []string
	for k := range data {
		if !slices.Contains(RequestKeys, k) {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return req, "", Faultf(CodeBadRequest, "request_data has unknown key(s) %s; accepted keys: %s",
			strings.Join(unknown, ", "), strings.Join(RequestKeys, ", "))
	}
	str := func(k string) (string, error) {
		v, ok := data[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", Faultf(CodeBadRequest, "request_data %s must be a string, not %s", k, TypeName(v))
		}
		if len(s) > 1024 {
			return "", Faultf(CodeBadRequest, "request_data %s is longer than 1024 characters", k)
		}
		return strings.TrimSpace(s), nil
	}
	var action, requestID string
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"project", &req.Project}, {"action", &action}, {"env", &req.Env},
		{"branch", &req.Source.Branch}, {"tag", &req.Source.Tag}, {"revision", &req.Source.Revision}, {"url", &req.Source.URL},
		{"request_id", &requestID}, {"from", &req.From},
	} {
		s, err := str(f.key)
		if err != nil {
			return req, "", err
		}
		*f.dst = s
	}
	switch t := data["rebuild"].(type) {
	case nil:
	case bool:
		req.Rebuild = t
	case int:
		if t != 0 && t != 1 {
			return req, "", Faultf(CodeBadRequest, "request_data rebuild must be a boolean, not %d", t)
		}
		req.Rebuild = t == 1
	default:
		return req, "", Faultf(CodeBadRequest, "request_data rebuild must be a boolean, not %s", TypeName(t))
	}
	switch t := data["trunk"].(type) {
	case nil:
	case bool:
		req.Source.Trunk = t
	case int:
		if t != 0 && t != 1 {
			return req, "", Faultf(CodeBadRequest, "request_data trunk must be a boolean, not %d", t)
		}
		req.Source.Trunk = t == 1
	default:
		return req, "", Faultf(CodeBadRequest, "request_data trunk must be a boolean, not %s", TypeName(t))
	}
	if req.Project == "" {
		return req, "", Faultf(CodeBadRequest, "request_data needs a project; list them with list_projects")
	}
	if _, ok := g.Config.Projects[req.Project]; !ok {
		return req, "", Faultf(CodeUnknownProject, "unknown project %q; this manager releases: %s", clip(req.Project), strings.Join(g.projects(), ", "))
	}
	switch workflows.Action(action) {
	case "":
		req.Action = workflows.ActionInstall
	case workflows.ActionBuild, workflows.ActionInstall:
		req.Action = workflows.Action(action)
	default:
		return req, "", Faultf(CodeBadRequest, "request_data action must be build or install, not %q", clip(action))
	}
	if req.Action == workflows.ActionInstall && req.Env == "" {
		return req, "", Faultf(CodeBadRequest, "an install needs env in request_data (one of %s), or use action build", strings.Join(g.envs(), ", "))
	}
	if err := req.Source.Validate(); err != nil {
		return req, "", Faultf(CodeBadRequest, "%v", err)
	}
	if req.From != "" && req.Action != workflows.ActionInstall {
		return req, "", Faultf(CodeBadRequest, "from (install an earlier build) needs action install")
	}
	// A request id never becomes a workflow id as it is (see
	// transaction.StartSigned), so it cannot name relman's own workflows or
	// another user's transaction; StartSigned checks its form.
	return req, requestID, nil
}

// txParam reads ([credentials,] trans_id). The one-argument form of the
// seed has no credentials: it reads as anonymous.
func (g *Gateway) txParam(ctx context.Context, method string, ps []any) (string, auth.Principal, error) {
	id, err := txParamID(method, ps)
	if err != nil {
		return "", auth.Principal{}, err
	}
	var cred any = map[string]any{}
	if len(ps) == 2 {
		cred = ps[0]
	}
	p, err := g.authenticate(ctx, cred)
	return id, p, err
}

func txParamID(method string, ps []any) (string, error) {
	switch len(ps) {
	case 1:
	case 2:
		if _, err := requester(ps[0]); err != nil {
			return "", err
		}
		ps = ps[1:]
	default:
		return "", Faultf(CodeInvalidParams, "%s takes ([credentials,] trans_id); got %d params", method, len(ps))
	}
	id, ok := ps[0].(string)
	if !ok {
		return "", Faultf(CodeInvalidParams, "trans_id must be a string, not %s", TypeName(ps[0]))
	}
	if id == "" {
		return "", Faultf(CodeUnknownTransaction, "trans_id is empty")
	}
	return id, nil
}

// checkTransaction faults unless id is a transaction (a Release or a
// Rollback workflow), so other workflows in the namespace (the registry,
// locks) never pass for transactions.
func (g *Gateway) checkTransaction(ctx context.Context, id string) error {
	desc, err := g.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		var ia *serviceerror.InvalidArgument
		if errors.As(err, &nf) {
			return g.checkRecord(ctx, id)
		}
		if errors.As(err, &ia) {
			return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
		}
		return Faultf(CodeInternal, "could not read transaction %s: %v", clip(id), err)
	}
	if !transaction.IsTransactionType(desc.GetWorkflowExecutionInfo().GetType().GetName()) {
		return Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	return nil
}

// readableTransaction reads ([credentials,] trans_id) and checks the id is
// a transaction the caller may read.
func (g *Gateway) readableTransaction(ctx context.Context, method string, ps []any) (string, error) {
	id, who, err := g.txParam(ctx, method, ps)
	if err != nil {
		return "", err
	}
	if err := g.checkTransaction(ctx, id); err != nil {
		return "", err
	}
	if err := g.mayRead(ctx, who, id); err != nil {
		return "", err
	}
	return id, nil
}

func (g *Gateway) queryTransaction(ctx context.Context, ps []any) (any, error) {
	id, err := g.readableTransaction(ctx, "query_transaction", ps)
	if err != nil {
		return nil, err
	}
	d, err := g.transactions().Get(ctx, id)
	switch {
	case errors.Is(err, transaction.ErrNotYet):
		// Started, its first workflow task not run yet: the seed's STARTED.
		return string(workflows.StatusStarted), nil
	case errors.Is(err, transaction.ErrUnverified):
		return nil, Faultf(CodeRecordUnverified, "%v", err)
	case errors.Is(err, transaction.ErrNotFound):
		return nil, Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	case err != nil:
		return nil, Faultf(CodeInternal, "could not read transaction %s: %v", clip(id), err)
	}
	return string(d.Status), nil
}

func (g *Gateway) queryHistory(ctx context.Context, ps []any) (any, error) {
	id, err := g.readableTransaction(ctx, "query_history", ps)
	if err != nil {
		return nil, err
	}
	steps, err := g.transactions().Timeline(ctx, id)
	if errors.Is(err, transaction.ErrUnverified) {
		return nil, Faultf(CodeRecordUnverified, "%v", err)
	}
	if errors.Is(err, transaction.ErrNotFound) {
		return nil, Faultf(CodeUnknownTransaction, "no transaction %q", clip(id))
	}
	if err != nil {
		return nil, Faultf(CodeInternal, "could not read the history of %s: %v", clip(id), err)
	}
	out := make([]any, 0, len(steps))
	for _, s := range steps {
		m := map[string]any{"time": s.Time, "event": s.Event, "detail": s.Detail}
		if s.Activity != "" {
			m["activity"] = s.Activity
		}
		if s.Queue != "" {
			m["queue"] = s.Queue
		}
		if s.Worker != "" {
			m["worker"] = s.Worker
		}
		if s.Attempt != 0 {
			m["attempt"] = int(s.Attempt)
		}
		out = append(out, m)
	}
	return out, nil
}

// optionalCredentials reads the (credentials) of the list methods; Python
// clients written for later auth may already send them.
func (g *Gateway) optionalCredentials(ctx context.Context, method string, ps []any) error {
	switch len(ps) {
	case 0:
		_, err := g.authenticate(ctx, map[string]any{})
		return err
	case 1:
		_, err := g.authenticate(ctx, ps[0])
		return err
	}
	return Faultf(CodeInvalidParams, "%s takes (credentials); got %d params", method, len(ps))
}

func (g *Gateway) listProjects(ctx context.Context, ps []any) (any, error) {
	if err := g.optionalCredentials(ctx, "list_projects", ps); err != nil {
		return nil, err
	}
	return g.projects(), nil
}

func (g *Gateway) listRegistrations(ctx context.Context, ps []any) (any, error) {
	if err := g.optionalCredentials(ctx, "list_registrations", ps); err != nil {
		return nil, err
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	ls, err := registry.Registry{Client: g.Client, ID: g.Config.RegistryID, ManagerQueue: g.Config.ManagerQueue}.List(ctx, now())
	if err != nil {
		return nil, Faultf(CodeInternal, "could not read the registrations: %v", err)
	}
	out := make([]any, 0, len(ls))
	for _, l := range ls {
		projects := slices.Clone(l.Projects)
		slices.Sort(projects)
		targets := map[string]any{}
		for env, ts := range l.Targets {
			ts = slices.Clone(ts)
			slices.Sort(ts)
			targets[env] = ts
		}
		if projects == nil {
			projects = []string{}
		}
		out = append(out, map[string]any{
			"role": string(l.Role), "id": l.ID, "projects": projects, "targets": targets,
			"registered": l.Registered, "renewed": l.Renewed, "expires": l.Expires,
		})
	}
	return out, nil
}

func (g *Gateway) projects() []string {
	out := make([]string, 0, len(g.Config.Projects))
	for p := range g.Config.Projects {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (g *Gateway) envs() []string {
	out := make([]string, 0, len(g.Config.Environments))
	for e := range g.Config.Environments {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

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
