package activities_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// An install whose order is missing, forged or for something else is
// refused before the installer downloads or installs anything.
func TestInstallRefusesUntrustedOrders(t *testing.T) {
	_, forger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := newInstallFixture(t)
	ref := f.putTree(t, map[string]string{"index.html": "hi"})
	other := f.putTree(t, map[string]string{"index.html": "evil"})
	in := workflows.InstallInput{Transaction: "tx-1", Project: "web", Env: "test", Target: "site", Artifact: ref}
	with := func(change func(*auth.Order)) workflows.InstallInput {
		o := f.order(in)
		change(&o)
		return f.signed(in, o, f.key)
	}
	tests := map[string]struct {
		in   workflows.InstallInput
		want string
	}{
		"no order": {in: in, want: "no signed order"},
		"unsigned": {in: func() workflows.InstallInput {
			x := in
			x.Order = &auth.SignedOrder{Order: f.order(in)}
			return x
		}(), want: "no signed order"},
		"unknown key": {in: f.signed(in, f.order(in), forger), want: "signed by an unknown key"},
		"other artifact": {in: func() workflows.InstallInput {
			x := f.signed(in, f.order(in), f.key)
			x.Artifact = other
			return x
		}(), want: "sha256"},
		"other host":        {in: with(func(o *auth.Order) { o.Host = "host-b" }), want: "host"},
		"other target":      {in: with(func(o *auth.Order) { o.Target = "tool" }), want: "target"},
		"other env":         {in: with(func(o *auth.Order) { o.Env = "prod" }), want: "env"},
		"other transaction": {in: with(func(o *auth.Order) { o.Transaction = "tx-0" }), want: "transaction"},
		"other namespace":   {in: with(func(o *auth.Order) { o.Namespace = "elsewhere" }), want: "namespace"},
		"other queue":       {in: with(func(o *auth.Order) { o.Queue = "other-manager" }), want: "queue"},
		"rollback order":    {in: with(func(o *auth.Order) { o.Action = workflows.OrderRollback }), want: "action"},
		"expired":           {in: with(func(o *auth.Order) { o.Expires = time.Now().Add(-time.Minute) }), want: "expired"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := f.inst.Install(context.Background(), tc.in)
			app := appError(t, err, activities.ErrOrderRefused, true)
			mustContain(t, app.Message(), "host-a", "order refused", tc.want)
			if _, err := os.Stat(f.sitePath()); !os.IsNotExist(err) {
				t.Errorf("site installed despite a refused order: %v", err)
			}
			if _, err := os.Stat(filepath.Join(f.inst.Config.WorkDir, "downloads")); !os.IsNotExist(err) {
				t.Errorf("downloaded despite a refused order: %v", err)
			}
		})
	}
	// The genuine order installs.
	if _, err := f.inst.Install(context.Background(), f.signed(in, f.order(in), f.key)); err != nil {
		t.Fatalf("signed install: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.sitePath(), "index.html")); err != nil {
		t.Fatalf("signed install left no site: %v", err)
	}
}

// A rollback needs its own signed order: unsigned, or an install's order,
// is refused and nothing is switched.
func TestRollbackRefusesUntrustedOrders(t *testing.T) {
	f := rolloutFixture(t, nil)
	var txs []string
	for i := range 2 {
		tx := newTx(t)
		txs = append(txs, tx)
		if _, err := f.install(tx, "app", f.putTree(t, map[string]string{"index.html": string(rune('1' + i))})); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	in := workflows.RollbackHostInput{Transaction: newTx(t), Project: "web", Env: "test", Target: "app"}
	_, err := f.inst.Rollback(ctx, in)
	app := appError(t, err, activities.ErrOrderRefused, true)
	mustContain(t, app.Message(), "no signed order")
	// An order for a rollback to another release does not do for this one.
	s, err := auth.SignOrder(f.key, auth.Order{ID: "rb-1", Transaction: in.Transaction, Host: "host-a", Env: "test", Target: "app",
		Action: workflows.OrderRollback, To: txs[0], Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	in.Order = &s
	_, err = f.inst.Rollback(ctx, in)
	app = appError(t, err, activities.ErrOrderRefused, true)
	mustContain(t, app.Message(), "to")
	live, _ := f.inst.Where(ctx, workflows.WhereHostInput{Env: "test", Targets: []string{"app"}})
	if live["app"].Transaction != txs[1] {
		t.Fatalf("a refused rollback switched app to %s", live["app"].Transaction)
	}
	in.Order = nil
	if res, err := f.rollback(ctx, in); err != nil || res.To != txs[0] {
		t.Fatalf("signed rollback = %+v (%v)", res, err)
	}
}

// Keys in trust.manager_key_files are read at each order: a file written
// after the installer started counts, and one that cannot be read is named
// in the refusal.
func TestInstallManagerKeyFiles(t *testing.T) {
	f := newInstallFixture(t)
	keyFile := filepath.Join(t.TempDir(), "orders.key")
	f.inst.Config.Trust = config.InstallerTrust{ManagerKeyFiles: []string{auth.OrderPublicKeyFile(keyFile)}}
	ref := f.putTree(t, map[string]string{"index.html": "hi"})
	_, err := f.install("tx-1", "site", ref)
	app := appError(t, err, activities.ErrOrderRefused, true)
	mustContain(t, app.Message(), "trust.manager_key_files", auth.OrderPublicKeyFile(keyFile))
	// The manager writes its public key beside its key at start.
	if _, err := auth.WriteOrderPublicKey(keyFile, f.key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.install("tx-1", "site", ref); err != nil {
		t.Fatalf("install with the manager's key file: %v", err)
	}
	// Rotated: the old key no longer does.
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.WriteOrderPublicKey(keyFile, pub); err != nil {
		t.Fatal(err)
	}
	_, err = f.install("tx-2", "site", ref)
	mustContain(t, appError(t, err, activities.ErrOrderRefused, true).Message(), "unknown key")
	f.key = key
	if _, err := f.install("tx-2", "site", ref); err != nil {
		t.Fatalf("install with the rotated key: %v", err)
	}
}

// An order is good for one activity: Temporal's retry of that activity
// may present it again, another activity (a replayed order) may not. Run
// through Temporal's test environment, so the installer sees real
// activity ids and the host queue the orders came in on.
func TestInstallOrderUsedOnce(t *testing.T) {
	f := newInstallFixture(t)
	// Fails its first try, after the order was checked; passes the next.
	f.inst.Config.Environments["test"]["flaky"] = config.InstallBehavior{Behavior: "command", Timeout: time.Minute,
		Command: []string{"sh", "-c", `if [ -e "$0" ]; then exit 0; fi; touch "$0"; exit 1`, filepath.Join(t.TempDir(), "tried")}}
	ref := f.putBytes(t, []byte("x\n"), "file", "x")
	in := workflows.InstallInput{Transaction: "tx-1", Project: "web", Env: "test", Target: "flaky", Artifact: ref}
	in = f.signed(in, f.order(in), f.key)

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(f.inst.Install, activity.RegisterOptions{Name: workflows.InstallActivity})
	type outcome struct {
		First  workflows.InstallResult
		Replay string
	}
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) (outcome, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           workflows.HostQueue("", "host-a"),
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2, InitialInterval: time.Millisecond},
		})
		var out outcome
		if err := workflow.ExecuteActivity(ctx, workflows.InstallActivity, in).Get(ctx, &out.First); err != nil {
			return out, err
		}
		err := workflow.ExecuteActivity(ctx, workflows.InstallActivity, in).Get(ctx, nil)
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.Type() == activities.ErrOrderRefused {
			out.Replay = app.Message()
		} else {
			out.Replay = fmt.Sprintf("not refused: %v", err)
		}
		return out, nil
	}, workflow.RegisterOptions{Name: "orders"})
	env.ExecuteWorkflow("orders")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the order's own activity (retried) was refused: %v", err)
	}
	var out outcome
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.First.Attempt != 2 {
		t.Errorf("install passed on attempt %d, want 2 (a retry with the same order)", out.First.Attempt)
	}
	mustContain(t, out.Replay, "order refused", "already used by another activity")
}
