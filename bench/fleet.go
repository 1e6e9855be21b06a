package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/workflows"
)

// regOut is row 6 at one fleet size: the registry while every host renews.
type regOut struct {
	hosts    int
	lease    time.Duration
	window   time.Duration
	renewals int
	failures int
	errors   []string
	lat      []time.Duration
	// parts are the window's thirds' renewals per second over the hosts'
	// schedule, so the row shows its spread as the others do.
	parts     []float64
	mgrCPU    time.Duration // the manager process's CPU over the window
	srvCPU    time.Duration // the dev server's
	shardMax  int64         // the longest current run of a shard, in events
	shardRuns int           // runs of all shards (continue-as-new + 1 each)
	load      string        // load average at the end of the window
}

// fleetOut is rows 6 and 7, measured on one dev server with one fleet of
// simulated hosts (testenv.StartFleet: real installers in this process).
type fleetOut struct {
	reg      []regOut
	counts   []int                   // hosts per release of row 7
	times    map[int][]time.Duration // hosts -> release times
	events   map[int]int             // hosts -> the release's history length
	children map[int]int             // hosts -> its HostFanOut children
	// floorTimes are row 7's bare-Temporal floor (fleetfloor.go) at each
	// size, run i interleaved with relman's run i.
	floorTimes         map[int][]time.Duration
	relWork, floorWork map[int]work // hosts -> one release's server work (count.go)
	loadFrom           string
}

// fleet is rows 6 and 7: o.fleetHosts[0] hosts start and renew for one
// window (row 6), the no-op release goes to 1, ..., o.fleetFan hosts of
// them (row 7), then the fleet grows to o.fleetHosts[1] and renews for
// another window. The manager is its own process, so its CPU is its own;
// the dev server allows the fleet's long polls (testenv.FleetServerArgs).
func (b *bench) fleet(ctx context.Context) (fleetOut, error) {
	out := fleetOut{counts: b.o.fleetFan, times: map[int][]time.Duration{}, events: map[int]int{}, children: map[int]int{}, loadFrom: loadAvg(),
		floorTimes: map[int][]time.Duration{}, relWork: map[int]work{}, floorWork: map[int]work{}}
	most := slices.Max(b.o.fleetHosts)
	dropPages()
	b.logf("starting the in-memory dev server for the fleet")
	args := append(slices.Clone(b.o.srvArgs), testenv.FleetServerArgs(most)...)
	s, err := startServer(ctx, b.bin, args, "in-memory, fleet", "", filepath.Join(b.root, "temporal-fleet.log"))
	if err != nil {
		return out, err
	}
	defer s.stop()
	var envs []string
	for _, n := range b.o.fleetFan {
		envs = append(envs, fmt.Sprintf("fleet%d", n))
	}
	mc, err := managerConfig(s.addr, b.root, envs)
	if err != nil {
		return out, err
	}
	procs, err := testenv.New(filepath.Join(b.root, "fleet"), b.relman, s.addr)
	if err != nil {
		return out, err
	}
	defer procs.Close()
	mk, err := b.startProc(procs, "manager", "fleet-manager", mc, "")
	if err != nil {
		return out, err
	}
	bc, err := builderConfig(s.addr, "fleet-builder", b.root, b.repo, map[string]config.BuildBehavior{"noop": noopProject(b.repo)})
	if err != nil {
		return out, err
	}
	br, err := startBuilder(s, bc)
	if err != nil {
		return out, err
	}
	s.roles = append(s.roles, br)
	if err := s.waitRegistered(ctx, "builder/fleet-builder"); err != nil {
		return out, b.procErr(err, procs)
	}

	host := func(i int) (*config.Installer, error) {
		var es []string
		for _, n := range b.o.fleetFan {
			if i < n {
				es = append(es, fmt.Sprintf("fleet%d", n))
			}
		}
		if len(es) == 0 {
			es = []string{"idle"}
		}
		ic, err := installerConfig(s.addr, fmt.Sprintf("fl%04d", i), b.root, "app", es)
		if err != nil {
			return nil, err
		}
		ic.Lease = b.o.fleetLease
		return ic, nil
	}
	var fleets []*testenv.Fleet
	defer func() {
		for _, f := range fleets {
			f.Stop()
		}
	}()
	started := 0
	grow := func(to int) error {
		b.logf("rows 6-7: starting hosts %d to %d", started, to-1)
		first := started
		f, err := testenv.StartFleet(ctx, testenv.FleetOptions{
			Address: s.addr, Hosts: to - first, Spread: b.o.fleetSpread, Logger: quietLogger(),
			Config: func(i int) (*config.Installer, error) { return host(first + i) },
		})
		if err != nil {
			return err
		}
		fleets = append(fleets, f)
		var ids []string
		for _, id := range f.IDs() {
			ids = append(ids, "installer/"+id)
		}
		started = to
		return s.waitRegistered(ctx, ids...)
	}
	window := func(hosts int) (regOut, error) {
		r := regOut{hosts: hosts, lease: b.o.fleetLease, window: b.o.fleetWindow}
		// One renewal period first, so every host is in its rhythm.
		time.Sleep(b.o.fleetLease / 3)
		snap := func() []testenv.RegistrationStats {
			out := make([]testenv.RegistrationStats, len(fleets))
			for i, f := range fleets {
				out[i] = f.Stats()
			}
			return out
		}
		renewed := func(from, to []testenv.RegistrationStats) int {
			n := 0
			for i := range to {
				n += to[i].Renewals - from[i].Renewals
			}
			return n
		}
		before := snap()
		m0, s0 := cpuTime(mk.Pid()), s.cpu()
		b.logf("row 6: %d hosts renewing for %s", hosts, b.o.fleetWindow)
		want := float64(hosts) / (b.o.fleetLease / 3).Seconds()
		last := before
		for range 3 {
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(b.o.fleetWindow / 3):
			}
			now := snap()
			r.parts = append(r.parts, float64(renewed(last, now))/(b.o.fleetWindow/3).Seconds()/want)
			last = now
		}
		r.mgrCPU, r.srvCPU = cpuTime(mk.Pid())-m0, s.cpu()-s0
		for i, f := range fleets {
			st := f.Stats()
			r.renewals += st.Renewals - before[i].Renewals
			r.failures += st.Failures - before[i].Failures
			r.lat = append(r.lat, st.RenewalLatencies[len(before[i].RenewalLatencies):]...)
			if st.Failures > before[i].Failures {
				r.errors = append(r.errors, st.Errors...)
			}
		}
		r.load = loadAvg()
		for k := range workflows.RegistryShards {
			id := workflows.RegistryShardID(workflows.DefaultRegistryID, k)
			d, err := s.c.DescribeWorkflowExecution(ctx, id, "")
			if err != nil {
				return r, err
			}
			r.shardMax = max(r.shardMax, d.GetWorkflowExecutionInfo().GetHistoryLength())
			r.shardRuns += runsOf(ctx, s, id)
		}
		return r, nil
	}

	if err := grow(b.o.fleetHosts[0]); err != nil {
		return out, err
	}
	r, err := window(b.o.fleetHosts[0])
	if err != nil {
		return out, err
	}
	out.reg = append(out.reg, r)

	// Row 7's floor: bare Temporal workers for as many host queues as its
	// largest release, stopped before the fleet grows.
	ff, err := startFleetFloor(s, slices.Max(b.o.fleetFan))
	defer ff.stop()
	if err != nil {
		return out, err
	}
	b.logf("row 7: warm-up")
	for _, n := range b.o.fleetFan {
		if _, _, err := s.fleetFloorRun(ctx, n); err != nil {
			return out, fmt.Errorf("row 7 floor: %w", err)
		}
		if _, _, err := s.release(ctx, "noop", fmt.Sprintf("fleet%d", n), false); err != nil {
			return out, b.procErr(err, procs)
		}
	}
	b.logf("row 7: %d runs of each of %v hosts, relman and its floor, interleaved", b.o.fleetRuns, b.o.fleetFan)
	for range b.o.fleetRuns {
		for _, n := range b.o.fleetFan {
			fd, _, err := s.fleetFloorRun(ctx, n)
			if err != nil {
				return out, fmt.Errorf("row 7 floor: %w", err)
			}
			out.floorTimes[n] = append(out.floorTimes[n], fd)
			d, det, err := s.release(ctx, "noop", fmt.Sprintf("fleet%d", n), false)
			if err != nil {
				return out, b.procErr(err, procs)
			}
			out.times[n] = append(out.times[n], d)
			h, err := testenv.History(ctx, s.c, det.Transaction, "")
			if err != nil {
				return out, err
			}
			out.events[n] = len(h.Events)
			out.children[n] = len(testenv.ChildIDs(h))
		}
	}
	b.logf("row 7: one more release and floor run of each size, their server work counted")
	for _, n := range b.o.fleetFan {
		if out.relWork[n], err = b.countRelease(ctx, s, "noop", fmt.Sprintf("fleet%d", n), "app"); err != nil {
			return out, b.procErr(err, procs)
		}
		if out.floorWork[n], err = b.countFloor(ctx, s, func(ctx context.Context) (time.Duration, string, error) { return s.fleetFloorRun(ctx, n) }); err != nil {
			return out, fmt.Errorf("row 7 floor: %w", err)
		}
	}
	ff.stop()

	if err := grow(b.o.fleetHosts[1]); err != nil {
		return out, err
	}
	r, err = window(b.o.fleetHosts[1])
	if err != nil {
		return out, err
	}
	out.reg = append(out.reg, r)
	return out, nil
}

// runsOf counts the runs of a workflow id (its continue-as-new chain)
// that visibility lists.
func runsOf(ctx context.Context, s *server, id string) int {
	resp, err := s.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	if err != nil {
		return 0
	}
	return len(resp.GetExecutions())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// fleetRows are rows 6 and 7.
func (f fleetOut) rows(quick bool) []row {
	var rows []row
	for _, r := range f.reg {
		label := fmt.Sprintf("registry, %d hosts renewing every %s (lease %s) for %s", r.hosts, r.lease/3, r.lease, r.window)
		want := float64(r.hosts) / (r.lease / 3).Seconds()
		got := float64(r.renewals) / r.window.Seconds()
		ratio := got / want
		if len(r.parts) > 0 {
			ratio = r.parts[medianRun(r.parts)]
		}
		rows = append(rows,
			row{"6", label + ": renewals per second, against the hosts' schedule (the window's thirds)", fmt.Sprintf("%.1f /s", got), fmt.Sprintf("%.1f /s", want), ratio, r.parts, "≥ 0.95", judge(quick, ratio, atLeast, 0.95, true)},
			row{"6", label + ": renewal latency p99", ms(pct(r.lat, 0.99)), "-", noRatio, nil, "-", "-"},
			row{"6", label + fmt.Sprintf(": failed registrations and renewals (of %d renewals)", r.renewals), fmt.Sprint(r.failures), "0", noRatio, nil, "0", judge(quick, 0, atMost, 0, r.failures == 0)},
		)
	}
	base := f.counts[0]
	top := slices.Max(f.counts)
	for _, n := range f.counts[1:] {
		// Run i of each size is interleaved with run i of the others.
		rows = append(rows, pairedRow(quick, "7", fmt.Sprintf("fan-out at fleet scale: no-op release to %d hosts vs %d (%d runs; its history: %d events, %d children)", n, base, len(f.times[n]), f.events[n], f.children[n]),
			f.times[n], f.times[base], n == top, 5.0))
	}
	for _, n := range f.counts {
		if len(f.floorTimes[n]) != len(f.times[n]) || len(f.times[n]) == 0 {
			continue
		}
		rows = append(rows, pairedRow(quick, "7f", fmt.Sprintf("fan-out at fleet scale: no-op release to %d host(s) vs the bare-Temporal floor to %d (%d runs; floor: %s)", n, n, len(f.times[n]), fleetFloorShape(n)),
			f.times[n], f.floorTimes[n], n == top, 1.5))
	}
	return rows
}

// pairedRow is a row of runs that were paired: run i of relman against run
// i of base, for every i. Its ratio is the median run's; with goaled, the
// goal is a ratio of at most limit.
func pairedRow(quick bool, id, what string, relman, base []time.Duration, goaled bool, limit float64) row {
	var rs []float64
	for i := range relman {
		rs = append(rs, ratioOf(relman[i], base[i]))
	}
	mi := medianRun(rs)
	goal, kind := "-", none
	if goaled {
		goal, kind = fmt.Sprintf("≤ %.1f", limit), atMost
	}
	return row{id, what, ms(relman[mi]), ms(base[mi]), rs[mi], rs, goal, judge(quick, rs[mi], kind, limit, true)}
}

// noRatio marks a row that is a figure, not a ratio.
var noRatio = -1.0

func fmtRatio(r float64) string {
	if r < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// figures are rows 6 and 7's other figures, one line each.
func (f fleetOut) figures() []string {
	var out []string
	for _, r := range f.reg {
		n := max(r.renewals, 1)
		lat := slices.Clone(r.lat)
		slices.Sort(lat)
		line := fmt.Sprintf("Row 6, %d hosts: %d renewals in %s; latency p50 %s, p99 %s, max %s; CPU per renewal: manager %s, dev server %s (manager %s and dev server %s over the window); shards: longest current run %d events, %d runs in all; load average at the end %s.",
			r.hosts, r.renewals, r.window, ms(pct(lat, 0.5)), ms(pct(lat, 0.99)), ms(pct(lat, 1)),
			micros(r.mgrCPU/time.Duration(n)), micros(r.srvCPU/time.Duration(n)), r.mgrCPU.Round(time.Second/10), r.srvCPU.Round(time.Second/10),
			r.shardMax, r.shardRuns, r.load)
		if r.failures > 0 {
			line += fmt.Sprintf(" Failures: %s.", strings.Join(r.errors, "; "))
		}
		out = append(out, line)
	}
	var sizes []string
	for _, n := range f.counts {
		sizes = append(sizes, fmt.Sprintf("%d host(s) %s (runs %s; history %d events, %d children; bare-Temporal floor runs %s)", n, ms(pct(f.times[n], 0.5)), durs(f.times[n]), f.events[n], f.children[n], durs(f.floorTimes[n])))
	}
	out = append(out, "Row 7: "+strings.Join(sizes, "; ")+".")
	out = append(out, fmt.Sprintf("Load average before rows 6 and 7: %s.", f.loadFrom))
	return out
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func printFleetFigures(w io.Writer, f fleetOut) {
	for _, l := range f.figures() {
		fmt.Fprintln(w, l)
	}
}
