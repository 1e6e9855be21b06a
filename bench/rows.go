package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
)

// orchRun is one run of row 1 (or 5): sequential latencies and one
// concurrent burst of each side.
type orchRun struct {
	relLat, floorLat     []time.Duration
	relBurst, floorBurst time.Duration // wall time of conc concurrent runs
	// settle is how long after relman's burst its releases' records took
	// to be written (their recorders to end): not in the burst's time,
	// waited for so the next run starts on a quiet manager.
	settle time.Duration
}

func (r orchRun) p50() float64 { return ratioOf(pct(r.relLat, 0.5), pct(r.floorLat, 0.5)) }
func (r orchRun) p95() float64 { return ratioOf(pct(r.relLat, 0.95), pct(r.floorLat, 0.95)) }

// tput is relman's throughput over the floor's: the floor's burst time
// over relman's.
func (r orchRun) tput() float64 { return ratioOf(r.floorBurst, r.relBurst) }

// orchOut is rows 1 and 5 on one server: o.repeats runs.
type orchOut struct {
	server                  string
	conc                    int
	runs                    []orchRun
	relEvents, floorEvents  int           // history events of one run
	relSrvCPU, floorSrvCPU  time.Duration // dev server CPU per run in the bursts
	relSelfCPU, floorSelfCP time.Duration // this process's CPU (roles + client) per run in the bursts
	relWork, floorWork      work          // server work of one release and one floor run (count.go)
}

func ratioOf(a, b time.Duration) float64 { return float64(a) / float64(b) }

// burstEnvs are the environments of a concurrent burst: one per release,
// each with its own lock, as many teams' releases would be. A burst into
// one environment's named target is row 8: the lock runs those one at a
// time by design.
func burstEnvs(env string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", env, i))
	}
	return out
}

// orchestration is row 1 (and row 5): a no-op release (build step `true`,
// one tiny target, 3 installer hosts) against the bare workflow of the same
// shape, both served from this process with one client per role. The
// manager runs its default config: the lock on (wait), build once on.
func (b *bench) orchestration(ctx context.Context, s *server, env, tag string) (orchOut, error) {
	out := orchOut{server: s.label, conc: b.o.conc}
	var roles []*inproc
	defer func() { stopAll(roles) }()
	var ids []string
	envs := append([]string{env}, burstEnvs(env, b.o.conc)...)
	for i := range 3 {
		host := fmt.Sprintf("%s-h%d", tag, i)
		r, err := b.startInstaller(s, host, envs, nil)
		if err != nil {
			return out, err
		}
		roles = append(roles, r)
		ids = append(ids, "installer/"+host)
	}
	fr, err := startFloor(s, 3)
	roles = append(roles, fr...)
	if err != nil {
		return out, err
	}
	if err := s.waitRegistered(ctx, ids...); err != nil {
		return out, err
	}
	relman := func(ctx context.Context, env string) (time.Duration, string, error) {
		d, det, err := s.release(ctx, "noop", env, false)
		id := ""
		if det != nil {
			id = det.Transaction
		}
		return d, id, err
	}
	floor := func(ctx context.Context) (time.Duration, string, error) { return s.floorRun(ctx, 3) }

	b.logf("row 1 on %s: warm-up", s.label)
	for range b.o.warmup {
		if _, _, err := floor(ctx); err != nil {
			return out, err
		}
		if _, _, err := relman(ctx, env); err != nil {
			return out, err
		}
	}
	var relID, floorID string
	for run := range b.o.repeats {
		var r orchRun
		b.logf("row 1 on %s, run %d of %d: %d sequential releases each, interleaved", s.label, run+1, b.o.repeats, b.o.seq)
		for range b.o.seq {
			d, id, err := floor(ctx)
			if err != nil {
				return out, err
			}
			r.floorLat, floorID = append(r.floorLat, d), id
			d, id, err = relman(ctx, env)
			if err != nil {
				return out, err
			}
			if b.o.verbose && d > 10*pct(r.floorLat, 0.5) {
				b.logf("slow release %s took %s:\n%s", id, d.Round(time.Millisecond), s.timeline(ctx, id))
			}
			r.relLat, relID = append(r.relLat, d), id
		}
		b.logf("row 1 on %s, run %d of %d: %d concurrent releases each", s.label, run+1, b.o.repeats, b.o.conc)
		burstOf := func(f func(context.Context, int) error) (time.Duration, time.Duration, time.Duration, error) {
			dropPages()
			srv0, self0 := s.cpu(), selfCPU()
			d, err := burst(ctx, b.o.conc, f)
			n := time.Duration(b.o.conc)
			return d, (s.cpu() - srv0) / n, (selfCPU() - self0) / n, err
		}
		if r.floorBurst, out.floorSrvCPU, out.floorSelfCP, err = burstOf(func(ctx context.Context, _ int) error { _, _, err := floor(ctx); return err }); err != nil {
			return out, err
		}
		if r.relBurst, out.relSrvCPU, out.relSelfCPU, err = burstOf(func(ctx context.Context, i int) error {
			_, _, err := relman(ctx, fmt.Sprintf("%s-%d", env, i))
			return err
		}); err != nil {
			return out, err
		}
		if r.settle, err = s.settle(ctx); err != nil {
			return out, err
		}
		b.logf("row 1 on %s, run %d: latency p50 %.2f, p95 %.2f, throughput %.2f; records written %s after the burst", s.label, run+1, r.p50(), r.p95(), r.tput(), r.settle.Round(time.Millisecond))
		out.runs = append(out.runs, r)
	}
	if b.o.verbose {
		b.logf("floor timeline:\n%s", s.timeline(ctx, floorID))
		b.logf("relman timeline:\n%s", s.timeline(ctx, relID))
	}
	out.relEvents = s.historyLength(ctx, relID)
	out.floorEvents = s.historyLength(ctx, floorID)
	b.logf("row 1 on %s: one more release and floor run each, their server work counted", s.label)
	if out.relWork, err = b.countRelease(ctx, s, "noop", env, "app"); err != nil {
		return out, err
	}
	if out.floorWork, err = b.countFloor(ctx, s, floor); err != nil {
		return out, err
	}
	return out, nil
}

// burst runs n copies of f at once and returns the wall time until the
// last one ends.
func burst(ctx context.Context, n int, f func(context.Context, int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx, i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	close(errs)
	for err := range errs {
		return d, fmt.Errorf("%d runs failed, first: %w", len(errs)+1, err)
	}
	return d, nil
}

func profileWhile(path string, f func() error) error {
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return err
	}
	err = f()
	pprof.StopCPUProfile()
	return err
}

// fanOut is row 3: the no-op release to 1..N hosts, o.repeats runs.
type fanOut struct {
	counts []int
	runs   []map[int][]time.Duration // per run: hosts -> release times
}

// ratios are each run's median time at n hosts over its median at the
// first count.
func (f fanOut) ratios(n int) []float64 {
	var out []float64
	for _, r := range f.runs {
		out = append(out, ratioOf(pct(r[n], 0.5), pct(r[f.counts[0]], 0.5)))
	}
	return out
}

// all is every run's times at n hosts.
func (f fanOut) all(n int) []time.Duration {
	var out []time.Duration
	for _, r := range f.runs {
		out = append(out, r[n]...)
	}
	return out
}

func (b *bench) fanout(ctx context.Context, s *server) (fanOut, error) {
	out := fanOut{counts: b.o.fan}
	maxN := slices.Max(b.o.fan)
	// Several hosts per process, as a real machine would run several
	// installers: all of them share one client connection.
	c, err := dial(s.addr, "bench-fanout-hosts")
	if err != nil {
		return out, err
	}
	defer c.Close()
	var roles []*inproc
	defer func() { stopAll(roles) }()
	var ids []string
	for i := range maxN {
		host := fmt.Sprintf("f%02d", i)
		var envs []string
		for _, n := range b.o.fan {
			if i < n {
				envs = append(envs, fmt.Sprintf("fan%d", n))
			}
		}
		r, err := b.startInstaller(s, host, envs, c)
		if err != nil {
			return out, err
		}
		roles = append(roles, r)
		ids = append(ids, "installer/"+host)
	}
	if err := s.waitRegistered(ctx, ids...); err != nil {
		return out, err
	}
	b.logf("row 3: %d hosts up; warm-up", maxN)
	for _, n := range b.o.fan {
		if _, _, err := s.release(ctx, "noop", fmt.Sprintf("fan%d", n), false); err != nil {
			return out, err
		}
	}
	for run := range b.o.repeats {
		b.logf("row 3, run %d of %d: %d releases to each of %v hosts, interleaved", run+1, b.o.repeats, b.o.fanRuns, b.o.fan)
		times := map[int][]time.Duration{}
		for range b.o.fanRuns {
			for _, n := range b.o.fan {
				d, _, err := s.release(ctx, "noop", fmt.Sprintf("fan%d", n), false)
				if err != nil {
					return out, err
				}
				times[n] = append(times[n], d)
			}
		}
		out.runs = append(out.runs, times)
	}
	return out, nil
}

// artOut is one artifact run: row 2 (with its shell floor) or row 4's large
// artifact.
type artOut struct {
	size         int64 // bytes of data
	archive      int64 // bytes of the tar.gz relman stored
	hosts        int
	relman       []time.Duration
	floor        []time.Duration
	floorFast    []time.Duration // the floor with gzip -1
	builderRSS   int64
	installerRSS int64 // the largest of the hosts
}

// artifact builds a project whose build step copies size bytes of mixed
// data into its output, and installs it on hosts installers. The builder
// and the installers are separate processes, so their peak RSS is theirs
// alone.
func (b *bench) artifact(ctx context.Context, s *server, name string, size int64, hosts, runs int, withFloor bool, env string) (artOut, error) {
	out := artOut{size: size, hosts: hosts}
	data := filepath.Join(b.root, "data-"+name)
	b.logf("%s: generating %d MiB of data", name, size>>20)
	if err := makeData(data, size); err != nil {
		return out, err
	}
	defer os.RemoveAll(data)
	prof := func(role string) string {
		if b.o.profile == "" || name != "row2" {
			return ""
		}
		return filepath.Join(b.o.profile, name+"-"+role+".pprof")
	}
	builderName := "builder-" + name
	bc, err := builderConfig(s.addr, builderName, b.root, b.repo, map[string]config.BuildBehavior{"big": bigProject(b.repo, data)})
	if err != nil {
		return out, err
	}
	if b.store != "" {
		bc.Artifacts = b.store
	}
	// The roles whose memory row 4 measures run as relman processes of
	// their own, through the tests' harness.
	procs, err := testenv.New(filepath.Join(b.root, "procs-"+name), b.relman, s.addr)
	if err != nil {
		return out, err
	}
	defer procs.Close()
	bk, err := b.startProc(procs, "builder", builderName, bc, prof("builder"))
	if err != nil {
		return out, err
	}
	ids := []string{"builder/" + builderName}
	var hostIDs []string
	var iks []*testenv.Proc
	for i := range hosts {
		host := fmt.Sprintf("%s-h%d", name, i)
		ic, err := installerConfig(s.addr, host, b.root, "data", []string{env})
		if err != nil {
			return out, err
		}
		if b.store != "" {
			ic.Artifacts = b.store
		}
		p := ""
		if i == 0 {
			p = prof("installer")
		}
		ik, err := b.startProc(procs, "installer", host, ic, p)
		if err != nil {
			return out, err
		}
		iks = append(iks, ik)
		ids = append(ids, "installer/"+host)
		hostIDs = append(hostIDs, host)
	}
	if err := s.waitRegistered(ctx, ids...); err != nil {
		return out, b.procErr(err, procs)
	}
	for r := range runs {
		if withFloor {
			removeInstalls(b.root, hostIDs, env)
			dropPages()
			d, err := shellFloor(ctx, data, filepath.Join(b.root, "floor-"+name), hosts, false)
			if err != nil {
				return out, err
			}
			out.floor = append(out.floor, d)
			removeInstalls(b.root, hostIDs, env)
			dropPages()
			d1, err := shellFloor(ctx, data, filepath.Join(b.root, "floor-"+name), hosts, true)
			if err != nil {
				return out, err
			}
			out.floorFast = append(out.floorFast, d1)
			b.logf("%s run %d: shell floor %s (gzip -1: %s)", name, r+1, d.Round(time.Millisecond), d1.Round(time.Millisecond))
		}
		removeInstalls(b.root, hostIDs, env)
		dropPages()
		d, det, err := s.release(ctx, "big", env, true)
		if err != nil {
			return out, b.procErr(err, procs)
		}
		out.relman = append(out.relman, d)
		out.archive = det.Artifacts["data"].Size
		b.logf("%s run %d: relman %s (archive %d MiB)", name, r+1, d.Round(time.Millisecond), out.archive>>20)
	}
	if out.builderRSS, err = bk.PeakRSS(); err != nil {
		return out, err
	}
	for _, k := range iks {
		v, err := k.PeakRSS()
		if err != nil {
			return out, err
		}
		out.installerRSS = max(out.installerRSS, v)
	}
	removeInstalls(b.root, hostIDs, env)
	return out, nil
}

// startProc writes a role's config and runs it as `relman ROLE`, with a
// CPU profile when profile is set.
func (b *bench) startProc(e *testenv.Env, role, name string, cfg any, profile string) (*testenv.Proc, error) {
	path, err := e.WriteConfig(name+"."+role+".yaml", cfg)
	if err != nil {
		return nil, err
	}
	var args []string
	if profile != "" {
		args = append(args, "--cpu-profile", profile)
	}
	return e.StartRole(name, role, path, args...)
}

func (b *bench) procErr(err error, e *testenv.Env) error {
	e.DumpLogs(os.Stderr, 3000)
	return err
}

// results of every row.
type results struct {
	orchMem, orchSQL orchOut
	orchFast         orchOut // row 1 on the unpaced dev server
	fan              fanOut
	art, big         artOut
	fleet            fleetOut // rows 6 and 7
	burst            burstOut // row 8
	cluster          clusterOut
	profiles         []string
	took             time.Duration
}
