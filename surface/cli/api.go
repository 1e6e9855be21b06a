package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// The manager's API: with --manager-url (or RELMAN_MANAGER_URL) the client
// commands talk to the manager's gateway over HTTP(S), its JSON API, with
// the user's token as credentials, and never dial Temporal: a user needs
// a relman token and the manager's URL, no namespace access.

// apiFault codes the CLI reads (surface/xmlrpc's, which the CLI does not
// import: both sit on the same floor).
const (
	faultBadRequest    = 4
	faultInternal      = 5
	faultInvalidParams = -32602
)

// notAPI: the URL answers, but not as relman's JSON API.
type notAPI struct{ msg string }

func (e *notAPI) Error() string { return e.msg }

// apiClient calls the manager's JSON API.
type apiClient struct {
	base string
	http *http.Client
	cred map[string]any
}

// apiFault is a fault the manager answered.
type apiFault struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (f *apiFault) Error() string {
	return fmt.Sprintf("the manager refused: %s (fault %d)", f.Message, f.Code)
}

// managerURL is --manager-url, then $RELMAN_MANAGER_URL, then the client
// config's manager_url; "" means talk to Temporal directly.
func (a *app) managerURL() (string, error) {
	if a.managerURLFlag != "" {
		return a.managerURLFlag, nil
	}
	if v, _ := a.opts.LookupEnv("RELMAN_MANAGER_URL"); strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	c, err := a.clientConfig()
	if c == nil || err != nil {
		return "", err
	}
	return c.ManagerURL, nil
}

// clientConfig is the user's client.yaml: $RELMAN_CLIENT_CONFIG, else
// client.yaml in $XDG_CONFIG_HOME/relman or ~/.config/relman if it is
// there; nil when there is none.
func (a *app) clientConfig() (*config.Client, error) {
	if a.client.done {
		return a.client.c, a.client.err
	}
	a.client.done = true
	path, explicit := a.opts.LookupEnv("RELMAN_CLIENT_CONFIG")
	if !explicit || path == "" {
		explicit = false
		dir, _ := a.opts.LookupEnv("XDG_CONFIG_HOME")
		if dir == "" {
			home, _ := a.opts.LookupEnv("HOME")
			if home == "" {
				return nil, nil
			}
			dir = filepath.Join(home, ".config")
		}
		path = filepath.Join(dir, "relman", config.ClientConfigName)
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	}
	a.client.c, a.client.err = config.LoadClient(path)
	if a.client.err != nil && explicit {
		a.client.err = fmt.Errorf("RELMAN_CLIENT_CONFIG: %w", a.client.err)
	}
	return a.client.c, a.client.err
}

// apiOrTemporal reads through the manager's API when a manager URL is
// set (viaAPI), else on a Temporal client dialed for it (viaTemporal).
func apiOrTemporal[T any](a *app, viaAPI func(*apiClient) (T, error), viaTemporal func(client.Client) (T, error)) (T, error) {
	var none T
	api, err := a.api()
	if err != nil {
		return none, err
	}
	if api != nil {
		return viaAPI(api)
	}
	c, err := a.dial()
	if err != nil {
		return none, err
	}
	defer c.Close()
	return viaTemporal(c)
}

// api is the manager's API client when a manager URL is set, else nil.
func (a *app) api() (*apiClient, error) {
	raw, err := a.managerURL()
	if raw == "" || err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usageErr("--manager-url must be the manager's gateway URL, like https://relman.example.com:10000/, not %q", raw)
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	cred := map[string]any{}
	if token != "" {
		cred["token"] = token
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return nil, usageErr("--manager-url %s is plain http to another machine: your token would cross the network in clear; use https:// (the gateway serves TLS off loopback)", raw)
		}
	} else if who := requester(a.opts.LookupEnv); who != "" {
		// A manager with authentication off takes the name as it is.
		cred["username"] = who
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	ca := a.managerCA
	if ca == "" {
		ca, _ = a.opts.LookupEnv("RELMAN_MANAGER_CA")
	}
	if c, _ := a.clientConfig(); ca == "" && c != nil {
		ca = c.ManagerCAPath
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("the manager's CA certificate: %w; check --manager-ca-path", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the manager's CA certificate %s holds no PEM certificate; check --manager-ca-path", ca)
		}
		tc.RootCAs = pool
	}
	return &apiClient{
		base: strings.TrimSuffix(u.String(), "/") + "/api/v1/",
		http: &http.Client{
			Timeout:   config.DefaultGatewayCallTimeout + config.DefaultGatewayWriteSlack,
			Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment},
		},
		cred: cred,
	}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// call calls method with the credentials and params, and decodes its
// result into out (nil: ignored).
func (c *apiClient) call(ctx context.Context, method string, out any, params ...any) error {
	body, err := json.Marshal(map[string]any{"params": append([]any{c.cred}, params...)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("could not reach the manager's API at %s: %w", strings.TrimSuffix(c.base, "api/v1/"), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the manager's answer to %s: %w", method, err)
	}
	var ans struct {
		Result json.RawMessage `json:"result"`
		Fault  *apiFault       `json:"fault"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil || (ans.Fault == nil && ans.Result == nil) {
		return &notAPI{fmt.Sprintf("the manager at %s does not answer as relman's JSON API (HTTP %d to %s): check --manager-url, or upgrade the manager", strings.TrimSuffix(c.base, "api/v1/"), resp.StatusCode, method)}
	}
	if ans.Fault != nil {
		if ans.Fault.Code == faultBadRequest || ans.Fault.Code == faultInvalidParams {
			return &exitError{code: ExitUsage, err: ans.Fault}
		}
		return ans.Fault
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(ans.Result, out); err != nil {
		return fmt.Errorf("the manager's answer to %s: %w", method, err)
	}
	return nil
}

// get reads a transaction's detail.
func (c *apiClient) get(ctx context.Context, txid string) (*workflows.Detail, error) {
	var d workflows.Detail
	if err := c.call(ctx, "get_transaction", &d, txid); err != nil {
		return nil, err
	}
	return &d, nil
}

// poll reads a transaction's detail as a poller wants it: a large
// transaction's installs as their count by state.
func (c *apiClient) poll(ctx context.Context, txid string) (*workflows.Detail, error) {
	var d workflows.Detail
	if err := c.call(ctx, "get_transaction", &d, txid, map[string]any{"installs": false}); err != nil {
		return nil, err
	}
	return &d, nil
}

// wait polls the detail until the status is final, as transaction.Wait
// does on Temporal. While the gateway does not answer, or answers that
// relman could not read the transaction (fault 5: a manager restarting),
// it polls on for DefaultAPIWaitOutage.
func (c *apiClient) wait(ctx context.Context, txid string, onChange func(*workflows.Detail)) (*workflows.Detail, error) {
	answered := time.Now()
	poll := func(ctx context.Context) (*workflows.Detail, error) {
		d, err := c.poll(ctx, txid)
		switch {
		case err == nil:
			answered = time.Now()
			return d, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case transient(err) && time.Since(answered) < config.DefaultAPIWaitOutage:
			return nil, nil
		}
		return nil, err
	}
	whole := func(ctx context.Context) (*workflows.Detail, error) { return c.get(ctx, txid) }
	return transaction.Follow(ctx, config.DefaultAPIFollowEvery, poll, whole, onChange)
}

// transient reports an error worth polling on: no answer from the
// gateway, or its fault 5 (relman could not do it now).
func transient(err error) bool {
	var f *apiFault
	if errors.As(err, &f) {
		return f.Code == faultInternal
	}
	var ee *exitError
	var na *notAPI
	return !errors.As(err, &ee) && !errors.As(err, &na)
}

// requestAction starts a release (request_action) and returns its id.
func (c *apiClient) requestAction(ctx context.Context, req workflows.Request, requestID string) (string, error) {
	var txid string
	err := c.call(ctx, "request_action", &txid, requestData(req, requestID))
	return txid, err
}

// plan asks what a release would do (plan).
func (c *apiClient) plan(ctx context.Context, req workflows.Request) (*workflows.PlanOnlyResult, []string, error) {
	var res struct {
		workflows.PlanOnlyResult
		Builders []string `json:"builders"`
	}
	if err := c.call(ctx, "plan", &res, requestData(req, "")); err != nil {
		return nil, nil, err
	}
	return &res.PlanOnlyResult, res.Builders, nil
}

// requestData is request_action's request_data for req.
func requestData(req workflows.Request, requestID string) map[string]any {
	data := map[string]any{"project": req.Project, "action": string(req.Action)}
	for k, v := range map[string]string{
		"env": req.Env, "branch": req.Source.Branch, "tag": req.Source.Tag, "revision": req.Source.Revision,
		"url": req.Source.URL, "from": req.From, "request_id": requestID,
	} {
		if v != "" {
			data[k] = v
		}
	}
	if req.Source.Trunk {
		data["trunk"] = true
	}
	if req.Rebuild {
		data["rebuild"] = true
	}
	if ro := req.Rollout; ro != nil {
		for k, v := range map[string]string{"strategy": ro.Strategy, "batch": ro.Batch, "max_failures": ro.MaxFailures} {
			if v != "" {
				data[k] = v
			}
		}
		if ro.Pause > 0 {
			data["pause"] = ro.Pause.String()
		}
	}
	return data
}

// list lists transactions (list_transactions).
func (c *apiClient) list(ctx context.Context, f transaction.Filter) ([]transaction.Listed, error) {
	filter := map[string]any{"limit": f.Limit}
	for k, v := range map[string]string{"project": f.Project, "env": f.Env, "status": f.Status, "requester": f.Requester} {
		if v != "" {
			filter[k] = v
		}
	}
	rows := []transaction.Listed{}
	err := c.call(ctx, "list_transactions", &rows, filter)
	return rows, err
}

// history reads a transaction's timeline (query_history).
func (c *apiClient) history(ctx context.Context, txid string) ([]transaction.Step, error) {
	var rows []struct {
		transaction.Step
		TookMS int64 `json:"took_ms"`
	}
	if err := c.call(ctx, "query_history", &rows, txid); err != nil {
		return nil, err
	}
	steps := make([]transaction.Step, len(rows))
	for i, r := range rows {
		steps[i] = r.Step
		steps[i].Took = time.Duration(r.TookMS) * time.Millisecond
	}
	return steps, nil
}

// where asks which transaction is live on each host (where) and puts its
// rows back into the shape relman where prints.
func (c *apiClient) where(ctx context.Context, project, env string) (*workflows.WhereResult, error) {
	var rows []struct {
		workflows.LiveInstall
		Host string `json:"host"`
	}
	if err := c.call(ctx, "where", &rows, map[string]any{"project": project, "env": env}); err != nil {
		return nil, err
	}
	res := &workflows.WhereResult{Project: project, Env: env, Hosts: map[string]map[string]workflows.LiveInstall{}}
	for _, r := range rows {
		if r.Target == "" {
			if res.Errors == nil {
				res.Errors = map[string]string{}
			}
			res.Errors[r.Host] = r.Error
			continue
		}
		if res.Hosts[r.Host] == nil {
			res.Hosts[r.Host] = map[string]workflows.LiveInstall{}
		}
		res.Hosts[r.Host][r.Target] = r.LiveInstall
	}
	return res, nil
}

// registrations lists the leases (list_registrations).
func (c *apiClient) registrations(ctx context.Context) ([]workflows.Lease, error) {
	ls := []workflows.Lease{}
	err := c.call(ctx, "list_registrations", &ls)
	return ls, err
}

// errNotOverAPI is the answer of a command that needs Temporal when a
// manager URL is set.
func (a *app) errNotOverAPI() error {
	cmd := a.cmdPath
	if cmd == "" {
		cmd = "this command"
	}
	return usageErr("%s is not available over the manager's API (--manager-url / RELMAN_MANAGER_URL is set): it talks to Temporal directly, which needs namespace access; run it without a manager URL, as an operator", cmd)
}
