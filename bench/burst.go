package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workflows"
)

// burstOut is row 8: o.burstTo request_action calls through the gateway,
// all at once, for one project into one environment, once per lock mode.
type burstOut struct {
	n     int
	modes []burstMode
}

type burstMode struct {
	mode     string        // the environment's lock
	accepted time.Duration // until every call had its transaction id
	done     time.Duration // until every transaction had ended
	statuses map[workflows.Status]int
}

// burstHosts serve row 8 and the profiled burst.
const burstHosts = 3

// burstRoles starts a manager with its gateway, a builder and burstHosts
// installers as relman processes (`relman manager|builder|installer`), each
// writing a CPU profile when profile is set, and returns the gateway's URL.
func (b *bench) burstRoles(ctx context.Context, s *server, procs *testenv.Env, envs map[string]config.Environment, profile bool) (string, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return "", err
	}
	var names []string
	for e := range envs {
		names = append(names, e)
	}
	slices.Sort(names)
	mc, err := managerConfig(s.addr, b.root, names)
	if err != nil {
		return "", err
	}
	for e, def := range envs {
		mc.Environments[e] = def
	}
	if err := mc.Validate(); err != nil {
		return "", err
	}
	mc.Gateway.Off = false
	mc.ListenPort = port
	prof := func(role string) string {
		if !profile || b.o.profile == "" {
			return ""
		}
		return filepath.Join(b.o.profile, "burst-"+role+".pprof")
	}
	if _, err := b.startProc(procs, "manager", "burst-manager", mc, prof("manager")); err != nil {
		return "", err
	}
	bc, err := builderConfig(s.addr, "burst-builder", b.root, b.repo, map[string]config.BuildBehavior{"noop": noopProject(b.repo)})
	if err != nil {
		return "", err
	}
	if _, err := b.startProc(procs, "builder", "burst-builder", bc, prof("builder")); err != nil {
		return "", err
	}
	ids := []string{"builder/burst-builder"}
	for i := range burstHosts {
		host := fmt.Sprintf("burst-h%d", i)
		ic, err := installerConfig(s.addr, host, b.root, "app", names)
		if err != nil {
			return "", err
		}
		p := ""
		if i == 0 {
			p = prof("installer")
		}
		if _, err := b.startProc(procs, "installer", host, ic, p); err != nil {
			return "", err
		}
		ids = append(ids, "installer/"+host)
	}
	if err := s.waitRegistered(ctx, ids...); err != nil {
		return "", b.procErr(err, procs)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", port), nil
}

// requestAction is the seed's request_action through the gateway, as an
// old client sends it.
func requestAction(ctx context.Context, url string, data map[string]any) (string, error) {
	var call bytes.Buffer
	if err := xmlrpc.EncodeCall(&call, "request_action", map[string]any{"username": "bench"}, data); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &call)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	v, err := xmlrpc.DecodeResponse(resp.Body)
	if err != nil {
		return "", fmt.Errorf("request_action: %w", err)
	}
	id, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("request_action answered %T, not a transaction id", v)
	}
	return id, nil
}

// gatewayBurst sends n request_action calls at once, env(i) naming each
// one's environment, and waits for every transaction to end.
func gatewayBurst(ctx context.Context, procs *testenv.Env, url string, n int, env func(int) string) (burstMode, error) {
	out := burstMode{statuses: map[workflows.Status]int{}}
	ids := make([]string, n)
	t0 := time.Now()
	_, err := burst(ctx, n, func(ctx context.Context, i int) error {
		id, err := requestAction(ctx, url, map[string]any{"project": "noop", "env": env(i), "trunk": true})
		ids[i] = id
		return err
	})
	out.accepted = time.Since(t0)
	if err != nil {
		return out, err
	}
	var mu sync.Mutex
	_, err = burst(ctx, n, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		d, err := procs.Final(ctx, ids[i])
		if d == nil || d.Status == "" {
			return fmt.Errorf("transaction %s: %w", ids[i], err)
		}
		mu.Lock()
		out.statuses[d.Status]++
		mu.Unlock()
		return nil
	})
	out.done = time.Since(t0)
	return out, err
}

// burstRows is row 8, and the CPU profiles of the manager, builder and
// installer under the 100-release burst of row 1 sent through the
// gateway (first, on processes of their own that write profiles).
func (b *bench) burstRows(ctx context.Context) (burstOut, error) {
	out := burstOut{n: b.o.burstTo}
	dropPages()
	b.logf("row 8: starting the in-memory dev server")
	s, err := startServer(ctx, b.bin, b.o.srvArgs, "in-memory, row 8", "", filepath.Join(b.root, "temporal-burst.log"))
	if err != nil {
		return out, err
	}
	defer s.stop()

	if b.o.profile != "" {
		procs, err := testenv.New(filepath.Join(b.root, "burst-profiled"), b.relman, s.addr)
		if err != nil {
			return out, err
		}
		envs := map[string]config.Environment{}
		for _, e := range burstEnvs("prof", b.o.profSize) {
			envs[e] = config.Environment{}
		}
		url, err := b.burstRoles(ctx, s, procs, envs, true)
		if err != nil {
			procs.Close()
			return out, err
		}
		b.logf("profiles: %d releases through the gateway into %d environments, at once", b.o.profSize, b.o.profSize)
		_, err = gatewayBurst(ctx, procs, url, b.o.profSize, func(i int) string { return fmt.Sprintf("prof-%d", i) })
		// Stopping writes the profiles.
		procs.Close()
		if err != nil {
			return out, b.procErr(err, procs)
		}
	}

	procs, err := testenv.New(filepath.Join(b.root, "burst"), b.relman, s.addr)
	if err != nil {
		return out, err
	}
	defer procs.Close()
	url, err := b.burstRoles(ctx, s, procs, map[string]config.Environment{
		"burst-wait":      {Lock: rollout.LockWait},
		"burst-supersede": {Lock: rollout.LockSupersede},
	}, false)
	if err != nil {
		return out, err
	}
	// One release first, so both modes start from a built commit.
	if _, err := gatewayBurst(ctx, procs, url, 1, func(int) string { return "burst-wait" }); err != nil {
		return out, b.procErr(err, procs)
	}
	for _, mode := range []string{rollout.LockWait, rollout.LockSupersede} {
		env := "burst-" + mode
		b.logf("row 8: %d request_action calls into %s at once (lock: %s)", b.o.burstTo, env, mode)
		m, err := gatewayBurst(ctx, procs, url, b.o.burstTo, func(int) string { return env })
		if err != nil {
			return out, b.procErr(err, procs)
		}
		m.mode = mode
		b.logf("row 8, lock %s: accepted in %s, all ended after %s: %v", mode, m.accepted.Round(time.Millisecond), m.done.Round(time.Millisecond), m.statuses)
		out.modes = append(out.modes, m)
	}
	return out, nil
}

func (m burstMode) summary() string {
	var keys []string
	for s := range m.statuses {
		keys = append(keys, string(s))
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m.statuses[workflows.Status(k)], k))
	}
	return strings.Join(parts, ", ")
}

// rows of row 8: how long the burst took in each lock mode, and what each
// release became. Not judged: the goal is the design's (one install for a
// burst in supersede mode, the lock kept in both), which the statuses show.
func (o burstOut) rows() []row {
	if len(o.modes) == 0 {
		return nil
	}
	var rows []row
	base := o.modes[0]
	for _, m := range o.modes {
		ratio := ratioOf(m.done, base.done)
		rows = append(rows, row{"8", fmt.Sprintf("burst: %d request_action calls through the gateway into one environment at once, lock %s: all ended (accepted in %s; %s)",
			o.n, m.mode, secs(m.accepted), m.summary()), secs(m.done), secs(base.done), ratio, nil, "-", "-"})
	}
	return rows
}
