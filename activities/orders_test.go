package activities_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	tests := map[string]struct {
		in   workflows.InstallInput
		want string
	}{
		"unsigned": {in: in, want: "unsigned"},
		"forged":   {in: f.signed(in, f.order(in), forger), want: "not signed by a trusted manager key"},
		"other artifact": {in: func() workflows.InstallInput {
			x := f.signed(in, f.order(in), f.key)
			x.Artifact = other
			return x
		}(), want: "sha256"},
		"other host": {in: func() workflows.InstallInput {
			o := f.order(in)
			o.Host = "host-b"
			return f.signed(in, o, f.key)
		}(), want: "host"},
		"expired": {in: func() workflows.InstallInput {
			o := f.order(in)
			o.Expires = time.Now().Add(-time.Minute)
			return f.signed(in, o, f.key)
		}(), want: "expired"},
		"other namespace": {in: func() workflows.InstallInput {
			o := f.order(in)
			o.Namespace = "elsewhere"
			return f.signed(in, o, f.key)
		}(), want: "namespace"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := f.inst.Install(context.Background(), tc.in)
			app := appError(t, err, activities.ErrOrderRefused, true)
			mustContain(t, app.Message(), "install order refused", tc.want)
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

// trust.unsigned_orders: allow runs unsigned installs (upgrades only).
func TestInstallUnsignedAllowed(t *testing.T) {
	f := newInstallFixture(t)
	f.inst.Config.Trust = config.InstallerTrust{UnsignedOrders: "allow"}
	if _, err := f.install("tx-1", "site", f.putTree(t, map[string]string{"a": "b"})); err != nil {
		t.Fatalf("signed install with allow: %v", err)
	}
	ref := f.putTree(t, map[string]string{"a": "c"})
	if _, err := f.inst.Install(context.Background(), workflows.InstallInput{Transaction: "tx-2", Env: "test", Target: "site", Artifact: ref}); err != nil {
		t.Fatalf("unsigned install with allow: %v", err)
	}
}

// A manager signs every order it is asked for with its key, binding its
// namespace and queue; installers trusting the key accept them.
func TestSignOrders(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := &activities.Manager{Config: &config.Manager{}, OrderKey: key, Now: func() time.Time { return now }}
	m.Config.Temporal.Namespace = "ns"
	m.Config.ManagerQueue = "mq"
	res, err := m.SignOrders(context.Background(), workflows.SignOrdersInput{Valid: time.Hour, Orders: []auth.Order{
		{Transaction: "t", Host: "h1", Env: "e", Target: "a", Action: "install", SHA256: "s1"},
		{Transaction: "t", Host: "h2", Env: "e", Target: "a", Action: "install", SHA256: "s1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Orders) != 2 || res.Orders[0].Order.ID == res.Orders[1].Order.ID {
		t.Fatalf("want two orders with distinct ids, got %+v", res.Orders)
	}
	want := auth.OrderExpect{Namespace: "ns", Queue: "mq", Transaction: "t", Host: "h2", Env: "e", Target: "a", Action: "install", SHA256: "s1"}
	if err := auth.VerifyOrder(&res.Orders[1], []ed25519.PublicKey{pub}, want, now.Add(59*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := auth.VerifyOrder(&res.Orders[1], []ed25519.PublicKey{pub}, want, now.Add(time.Hour)); err == nil {
		t.Fatal("order still good after its validity")
	}
	// Without a key the manager signs nothing.
	m.OrderKey = nil
	res, err = m.SignOrders(context.Background(), workflows.SignOrdersInput{Valid: time.Hour, Orders: []auth.Order{{Host: "h1"}}})
	if err != nil || len(res.Orders) != 0 {
		t.Fatalf("keyless: %+v, %v", res, err)
	}
}
