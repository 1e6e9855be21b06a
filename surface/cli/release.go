package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func (a *app) releaseCommand() *cobra.Command {
	var (
		rf           requestFlags
		wait, follow bool
		id           string
	)
	cmd := &cobra.Command{
		Use:   "release PROJECT",
		Short: "Build a project and install it into an environment; prints the transaction id",
		Example: `  relman release template --env test
  relman release template --env test --branch feature-x --follow
  relman release template --action build --tag v1.2.0 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.request(args[0]); err != nil {
				return err
			}
			return a.submit(cmd.Context(), rf.req, submitOptions{id: id, wait: wait, follow: follow})
		},
	}
	f := cmd.Flags()
	req := &rf.req
	f.BoolVar(&req.Source.Trunk, "trunk", false, "build the default branch (the default)")
	f.StringVar(&req.Source.Branch, "branch", "", "build this branch")
	f.StringVar(&req.Source.Tag, "tag", "", "build this tag")
	f.StringVar(&req.Source.Revision, "revision", "", "build this commit or revision")
	f.StringVar(&req.Source.URL, "url", "", "build from this repository URL (must match the project's allowed prefixes)")
	f.BoolVar(&wait, "wait", false, "wait for the final status; exit 3 unless it succeeded")
	f.BoolVar(&follow, "follow", false, "show live progress until the final status; exit 3 unless it succeeded")
	f.StringVar(&id, "request-id", "", "idempotency key: the same id starts one transaction and returns it again")
	f.BoolVar(&req.Rebuild, "rebuild", false, "build even if this commit was built before with the same build config")
	rf.add(f)
	return cmd
}

type submitOptions struct {
	id           string
	wait, follow bool
}

// submit starts a release and, as asked, waits for it or follows it.
func (a *app) submit(ctx context.Context, req workflows.Request, o submitOptions) error {
	if o.wait && o.follow {
		return usageErr("use --wait or --follow, not both")
	}
	req.Requester = requester(a.opts.LookupEnv)
	api, err := a.api()
	if err != nil {
		return err
	}
	var (
		txid string
		wait waitFunc
	)
	if api != nil {
		if txid, err = api.requestAction(ctx, req, o.id); err != nil {
			return err
		}
		wait = api.wait
	} else {
		c, err := a.dialToStart(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		var traceID string
		var endSpan func()
		ctx, traceID, endSpan = a.tel.Span(ctx, "relman release "+req.Project)
		defer endSpan()
		sign, err := a.signer()
		if err != nil {
			return err
		}
		txid, err = transaction.StartSigned(ctx, c, a.queue, o.id, req, sign)
		if errors.Is(err, transaction.ErrBadRequestID) {
			return usageErr("%v", err)
		}
		if err != nil {
			return err
		}
		if traceID != "" {
			fmt.Fprintf(a.opts.Stderr, "trace %s\n", traceID)
		}
		wait = temporalWait(c)
	}
	if a.output == "json" && !o.wait && !o.follow {
		return a.printJSON(map[string]string{"transaction": txid})
	}
	if !o.wait && !o.follow {
		fmt.Fprintln(a.opts.Stdout, txid)
		return nil
	}
	if a.output == "text" {
		fmt.Fprintf(a.opts.Stdout, "transaction %s\n", txid)
	}
	var d *workflows.Detail
	if o.follow {
		d, err = a.follow(ctx, wait, txid)
	} else {
		d, err = wait(ctx, txid, nil)
	}
	if err != nil {
		return err
	}
	return a.printEnded(txid, d, d.Request.Action)
}

func (a *app) installCommand() *cobra.Command {
	var (
		from, env, id string
		wait, follow  bool
	)
	cmd := &cobra.Command{
		Use:     "install --from TXID --env E",
		Short:   "Install the build of an earlier transaction into an environment, without rebuilding",
		Example: `  relman install --from 0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10 --env prod --follow`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || env == "" {
				return usageErr("relman install needs --from TXID (a transaction whose build completed) and --env")
			}
			d, err := a.getTransaction(cmd.Context(), from)
			if err != nil {
				return err
			}
			if d.Request.Project == "" {
				return fmt.Errorf("transaction %s has not run yet, so it has no build to install; wait for it (relman status %s)", from, from)
			}
			req := workflows.Request{Project: d.Request.Project, Action: workflows.ActionInstall, Env: env, Source: d.Request.Source, From: from}
			return a.submit(cmd.Context(), req, submitOptions{id: id, wait: wait, follow: follow})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "the transaction whose build to install")
	f.StringVar(&env, "env", "", "environment to install into")
	f.BoolVar(&wait, "wait", false, "wait for the final status; exit 3 unless it succeeded")
	f.BoolVar(&follow, "follow", false, "show live progress until the final status; exit 3 unless it succeeded")
	f.StringVar(&id, "request-id", "", "idempotency key: the same id starts one transaction and returns it again")
	return cmd
}

func requester(lookup func(string) (string, bool)) string {
	if v, ok := lookup("RELMAN_REQUESTER"); ok && v != "" {
		return v
	}
	if v, ok := lookup("USER"); ok && v != "" {
		return v
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// signer signs requests with the user's token: --token-file, then
// $RELMAN_TOKEN_FILE, then $RELMAN_TOKEN. No token, no signature (a manager
// with authentication on then refuses the request).
func (a *app) signer() (*transaction.Signer, error) {
	key, err := a.tokenKey()
	if key == nil || err != nil {
		return nil, err
	}
	return &transaction.Signer{
		ID: auth.TokenSigner(auth.KeyID(key.Public().(ed25519.PublicKey))),
		Sign: func(payload []byte) *auth.Signature {
			s := auth.SignWithToken(key, payload, time.Now())
			return &s
		},
	}, nil
}

// printEnded prints how transaction txid ended (JSON or a summary) and
// returns the exit error of one that did not succeed at action.
func (a *app) printEnded(txid string, d *workflows.Detail, action workflows.Action) error {
	if a.output == "json" {
		if err := a.printJSON(d); err != nil {
			return err
		}
	} else {
		printSummary(a.opts.Stdout, d)
	}
	if !d.Status.Succeeded(action) {
		return &exitError{code: ExitReleaseFailed, err: fmt.Errorf("transaction %s ended %s: %s", txid, d.Status, d.Reason)}
	}
	return nil
}

// signedDial is a.signer (nil without a token) and a.dial: what a command
// that sends a signed request needs. The caller closes the client.
func (a *app) signedDial() (*transaction.Signer, client.Client, error) {
	sign, err := a.signer()
	if err != nil {
		return nil, nil, err
	}
	c, err := a.dial()
	if err != nil {
		return nil, nil, err
	}
	return sign, c, nil
}

// actAs is who acts (requester) and how they reach the manager: their
// signer, if they have a token, and a client. Approve, reject and cancel
// act as someone; without a name they are refused.
func (a *app) actAs() (string, *transaction.Signer, client.Client, error) {
	by := requester(a.opts.LookupEnv)
	if by == "" {
		return "", nil, nil, usageErr("who you are is unknown; set RELMAN_REQUESTER")
	}
	sign, c, err := a.signedDial()
	return by, sign, c, err
}

// tokenKey reads the user's token, if any, and returns its signing key.
func (a *app) tokenKey() (ed25519.PrivateKey, error) {
	token, err := a.token()
	if token == "" || err != nil {
		return nil, err
	}
	key, err := auth.ParseToken(token)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return key, nil
}

// token reads the user's token, if any: --token-file, then
// $RELMAN_TOKEN_FILE, then $RELMAN_TOKEN. A token that is not one is a
// usage error.
func (a *app) token() (string, error) {
	token := ""
	file := a.tokenFile
	if file == "" {
		file, _ = a.opts.LookupEnv("RELMAN_TOKEN_FILE")
	}
	if _, set := a.opts.LookupEnv("RELMAN_TOKEN"); file == "" && !set {
		c, err := a.clientConfig()
		if err != nil {
			return "", err
		}
		if c != nil {
			file = c.TokenFile
		}
	}
	if file != "" {
		b, err := secretfile.Read(file, a.warnSecret)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	} else if v, ok := a.opts.LookupEnv("RELMAN_TOKEN"); ok {
		token = strings.TrimSpace(v)
	}
	if token == "" {
		return "", nil
	}
	if _, err := auth.ParseToken(token); err != nil {
		return "", usageErr("%v", err)
	}
	return token, nil
}
