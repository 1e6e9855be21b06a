package main

import (
	_ "embed"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// analysis is the hand-written reading of the profiles of a full run: what
// dominates each row short of its goal and what would close the gap. It is
// kept beside the code so `make bench` keeps it in BENCHMARKS.md.
//
//go:embed analysis.md
var analysis string

// analysisHeading starts the hand-written analysis (analysis.md).
const analysisHeading = "## Analysis"

type row struct {
	id, what      string
	relman, floor string
	ratio         float64 // the median run's
	// runs are every run's ratio when the row ran several times; ratio is
	// their median and is what the goal judges.
	runs []float64
	goal string
	met  string // yes, no, or "-" when not judged
}

// medianRun is the index of the run whose ratio is the median (the lower
// middle one of an even count).
func medianRun(ratios []float64) int {
	idx := make([]int, len(ratios))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ratios[a] < ratios[b]:
			return -1
		case ratios[a] > ratios[b]:
			return 1
		}
		return 0
	})
	return idx[(len(idx)-1)/2]
}

// spread is "min / median / max" of a row's runs, or "-".
func (r row) spread() string {
	if len(r.runs) < 2 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", slices.Min(r.runs), r.runs[medianRun(r.runs)], slices.Max(r.runs))
}

type goalKind int

const (
	atMost goalKind = iota
	atLeast
	none
)

func judge(quick bool, ratio float64, kind goalKind, limit float64, extra bool) string {
	if quick {
		return "-"
	}
	ok := extra
	switch kind {
	case atMost:
		ok = ok && ratio <= limit
	case atLeast:
		ok = ok && ratio >= limit
	case none:
		return "-"
	}
	if ok {
		return "yes"
	}
	return "no"
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func minDur(ds []time.Duration) time.Duration { return slices.Min(ds) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
func secs(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}
func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func sizeLabel(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.0f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

const rssBudget = 100 << 20

func (r *results) rows(o options) []row {
	q := o.quick
	var rows []row
	orch := func(id string, x orchOut) { rows = append(rows, orchRows(id, x, q)...) }
	orch("1", r.orchMem)
	orch("1u", r.orchFast)

	a := r.art
	rows = append(rows, artRow("2", "", a, q))
	var afs []float64
	for i := range a.relman {
		afs = append(afs, ratioOf(a.relman[i], a.floorFast[i]))
	}
	mf := medianRun(afs)
	rows = append(rows, row{"2g1", "the same against a floor that gzips at level 1 (`tar cf - | gzip -1`), as relman does",
		secs(a.relman[mf]), secs(a.floorFast[mf]), afs[mf], afs, "-", "-"})

	f := r.fan
	base := f.counts[0]
	top := slices.Max(f.counts)
	for _, n := range f.counts[1:] {
		rs := f.ratios(n)
		mr := f.runs[medianRun(rs)]
		goal, kind := "-", none
		if n == top {
			goal, kind = "≤ 2.0", atMost
		}
		rows = append(rows, row{"3", fmt.Sprintf("fan-out: no-op release to %d hosts vs %d (%d runs, median of %d each)", n, base, len(f.runs), len(mr[n])),
			ms(pct(mr[n], 0.5)), ms(pct(mr[base], 0.5)), rs[medianRun(rs)], rs, goal, judge(q, rs[medianRun(rs)], kind, 2.0, true)})
	}

	g := r.big
	for _, who := range []struct {
		name         string
		small, large int64
	}{{"builder", a.builderRSS, g.builderRSS}, {"installer", a.installerRSS, g.installerRSS}} {
		rb := float64(who.small) / rssBudget
		rows = append(rows, row{"4", fmt.Sprintf("%s peak RSS, %s artifact, over row 2's %d runs (vs the 100 MiB budget)", who.name, sizeLabel(a.size), len(a.relman)),
			mib(who.small), "100 MiB", rb, nil, "≤ 1.0", judge(q, rb, atMost, 1.0, true)})
		rf := float64(who.large) / float64(who.small)
		rows = append(rows, row{"4", fmt.Sprintf("%s peak RSS, %s artifact (vs the %s run: flat)", who.name, sizeLabel(g.size), sizeLabel(a.size)),
			mib(who.large), mib(who.small), rf, nil, "≤ 1.25, < 100 MiB", judge(q, rf, atMost, 1.25, who.large < rssBudget)})
	}

	orch("5", r.orchSQL)
	rows = append(rows, r.fleet.rows(q)...)
	return append(rows, r.burst.rows()...)
}

// orchRows are the rows of row 1 (or 5, 1u, C1) on one server.
func orchRows(id string, x orchOut, q bool) []row {
	n := len(x.runs)
	var p50s, p95s, tps []float64
	for _, run := range x.runs {
		p50s, p95s, tps = append(p50s, run.p50()), append(p95s, run.p95()), append(tps, run.tput())
	}
	m50, m95, mt := x.runs[medianRun(p50s)], x.runs[medianRun(p95s)], x.runs[medianRun(tps)]
	label := fmt.Sprintf("no-op release, 3 hosts, default config, %s", x.server)
	return []row{
		{id, fmt.Sprintf("%s: latency p50 (%d runs of %d)", label, n, len(m50.relLat)), ms(pct(m50.relLat, 0.5)), ms(pct(m50.floorLat, 0.5)), m50.p50(), p50s, "≤ 1.3", judge(q, m50.p50(), atMost, 1.3, true)},
		{id, fmt.Sprintf("%s: latency p95 (%d runs of %d)", label, n, len(m95.relLat)), ms(pct(m95.relLat, 0.95)), ms(pct(m95.floorLat, 0.95)), m95.p95(), p95s, "≤ 1.3", judge(q, m95.p95(), atMost, 1.3, true)},
		{id, fmt.Sprintf("%s: throughput, %d concurrent into %d environments (%d runs)", label, x.conc, x.conc, n),
			fmt.Sprintf("%.1f /s", float64(x.conc)/mt.relBurst.Seconds()), fmt.Sprintf("%.1f /s", float64(x.conc)/mt.floorBurst.Seconds()), mt.tput(), tps, "≥ 0.8", judge(q, mt.tput(), atLeast, 0.8, true)},
	}
}

// artRow is row 2 (or C2) of one artifact run against its shell floor.
func artRow(id, label string, a artOut, q bool) row {
	var ars []float64
	for i := range a.relman {
		ars = append(ars, ratioOf(a.relman[i], a.floor[i]))
	}
	ma := medianRun(ars)
	return row{id, fmt.Sprintf("artifact path: %s%s mixed data to %d hosts, end to end (%d runs)", label, sizeLabel(a.size), a.hosts, len(a.relman)),
		secs(a.relman[ma]), secs(a.floor[ma]), ars[ma], ars, "≤ 1.0", judge(q, ars[ma], atMost, 1.0, true)}
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\twhat\trelman\tfloor\tratio\tmin / median / max\tgoal\tmet")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.id, r.what, r.relman, r.floor, fmtRatio(r.ratio), r.spread(), r.goal, r.met)
	}
	tw.Flush()
}

// profileTops summarises each CPU profile with `go tool pprof -top`.
func profileTops(dir string, names []string) map[string]string {
	out := map[string]string{}
	if dir == "" {
		return out
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			continue
		}
		for _, mode := range []string{"-top", "-top -cum"} {
			args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
			args = append(args, "-nodecount=18", p)
			b, err := exec.Command(goBin, args...).Output()
			if err != nil {
				continue
			}
			// Keep the table; drop the header lines that name local paths.
			var keep []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
					continue
				}
				keep = append(keep, l)
			}
			out[n+" "+mode] = strings.TrimSpace(strings.Join(keep, "\n"))
		}
	}
	return out
}

func writeMarkdown(o options, path string, m machine, rows []row, r *results, tops map[string]string) error {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("# Benchmarks\n\n")
	w("How close relman is to what its machine can do. Every figure is a ratio: relman over a floor\n")
	w("measured in the same run, on the same Temporal dev server. `make bench` runs everything (under\n")
	w("10 minutes on 2 cores) and rewrites this file; `make bench-quick` is the CI smoke test (small\n")
	w("sizes, ratios printed, never judged). No test asserts a timing. The code is in `bench/`.\n\n")
	w("Every judged row runs %d times in one `make bench` (rows 1, 1u, 2, 3, 5 and 7 whole runs, row 6 the\n", o.repeats)
	w("thirds of its window); the table shows the median run's figures and ratio, the spread of the\n")
	w("ratios as min / median / max, and judges the median, so one noisy run neither passes nor fails a\n")
	w("goal. Rows 1, 1u, 3, 5, 7 and 8 run relman as users do: the manager's default config (`lock: wait`\n")
	w("on every environment, build once on).\n\n")
	w("## Machine\n\n")
	w("| | |\n| --- | --- |\n")
	w("| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | Linux %s |\n", m.CPUs, m.Model, m.MemTotal, m.Kernel)
	w("| Go | %s |\n| Temporal CLI | %s |\n| load average at start | %s |\n| date | %s |\n| bench took | %s |\n\n",
		m.Go, strings.ReplaceAll(m.Temporal, "\n", " "), m.Load, m.Date, r.took.Round(time.Second))
	w("## Results\n\n")
	w("| row | what | relman | floor | ratio | min / median / max | goal | met? |\n| --- | --- | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, x := range rows {
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.id, strings.ReplaceAll(x.what, "|", "\\|"), x.relman, x.floor, fmtRatio(x.ratio), x.spread(), x.goal, x.met)
	}
	if wr := r.workRows(); len(wr) > 0 {
		w("\n## Server work per release\n\n")
		w("%s", workText)
		w("%s", workMarkdown(wr))
	}
	w("\n## What is inside each timing\n\n")
	w("- **Rows 1 and 5.** relman: `transaction.Start` (the CLI's and gateway's path) to the `Release`\n")
	w("  workflow's result with status `INSTALL_COMPLETED`: the plan (a local activity: registry query),\n")
	w("  the build activity (build once: `git ls-remote` of the branch, and the commit found built\n")
	w("  before with the same build config, so its artifacts are reused and no step runs), the lock of\n")
	w("  the named target taken and given back, 3 install activities in parallel (download, sha256,\n")
	w("  unarchive, swap), the search attribute upserts and the closed-transaction record. Floor:\n")
	w("  `ExecuteWorkflow` to the result of a bare workflow running one no-op activity on a build queue,\n")
	w("  then one on each of 3 host queues in parallel: it does less work than relman at every step\n")
	w("  (its \"build\" does nothing at all), so build once makes no row easier than the floor. Both run\n")
	w("  their workflow worker, build worker and 3 host workers in the bench process, one client each,\n")
	w("  with the SDK's default worker options. Latency: %d sequential releases per run into one\n", o.seq)
	w("  environment (so each takes and gives back its lock), relman and floor interleaved, after %d\n", o.warmup)
	w("  warm-up runs each. Throughput: %d releases started at once, each into an environment of its own\n", o.conc)
	w("  (their own locks, as many teams' releases are; %d into one target is row 8), count over wall\n", o.burstTo)
	w("  time to the last.\n")
	w("- **Row 2.** relman: release start to `INSTALL_COMPLETED` of a project whose build step is\n")
	w("  `cp -r DATA out` (DATA: half random bytes, half repetitive log text, outside the repository),\n")
	w("  on a builder process and %d installer processes (the bench binary re-executed, running\n", r.art.hosts)
	w("  `workers.Builder` / `workers.Installer`). Floor: one `sh` running `cp -r DATA out`, `tar czf`,\n")
	w("  then for each host `sha256sum` and `tar xzf`, one after the other. Install dirs are removed and\n")
	w("  `sync` runs before each timing, outside it. Best of %d runs each, interleaved.\n", len(r.art.relman))
	w("- **Row 3.** The row 1 release to environments served by 1, ..., %d hosts; all hosts run in one\n", slices.Max(r.fan.counts))
	w("  process on one client, each with its own host queue and install root. The floor is the\n")
	w("  1-host time; each run is the median of %d releases of each size, interleaved.\n", o.fanRuns)
	w("- **Row 4.** Peak RSS (`VmHWM` of `/proc/<pid>/status`) of the builder process and the largest of\n")
	w("  the installer processes: the row 2 processes for the %s artifact, fresh ones (1 host) for %s.\n", sizeLabel(r.art.size), sizeLabel(r.big.size))
	w("  `cp`, `git` and `tar` are child processes and not counted.\n")
	w("- **Row 1u.** Row 1 on a dev server without its transfer-queue pacing\n")
	w("  (`history.transferProcessorMaxPollRPS=1000`; by default every task dispatch waits up to 50 ms):\n")
	w("  what relman itself costs per release shows plainly, as on a production cluster.\n")
	w("- **Row 5.** Row 1 again on a dev server started with `--db-filename` (SQLite file on disk).\n")
	w("- **Row 8.** A manager (gateway on), a builder and %d installers as relman processes on a fresh\n", burstHosts)
	w("  dev server; %d `request_action` calls (the seed's XML-RPC) for the no-op project into one\n", r.burst.n)
	w("  environment, sent at once, timed until every transaction has ended: once into an environment\n")
	w("  with the default `lock: wait` (they install one after another) and once into one with\n")
	w("  `lock: supersede` (a newer release takes the place of those still waiting). The floor column is\n")
	w("  the `wait` time.\n")
	if len(r.fleet.reg) > 0 {
		w("- **Rows 6 and 7** run last, on a fresh in-memory dev server whose frontend allows the fleet's long polls\n")
		w("  (`frontend.namespaceCount`, as a production cluster with that many hosts needs). The hosts are real installers\n")
		w("  started by `testenv.StartFleet` in the bench process (each `workers.Run` with its own host id, queue,\n")
		w("  registration and install root; 100 hosts share one client), over %s; the manager is its own process.\n", r.fleet.reg[0].window/4)
		w("  **Row 6:** after every host has registered and one more lease has passed, the hosts renew for %s:\n", r.fleet.reg[0].window)
		w("  renewals counted as they end, each one's time from the renewal call to the server's answer, and every\n")
		w("  registration or renewal that returned an error. The floor is the hosts' schedule (one renewal per host every\n")
		w("  lease/3). **Row 7:** the row 1 no-op release to environments served by %s of those hosts while all of\n", joinInts(r.fleet.counts))
		w("  them renew; the floor is the 1-host release; medians of %d runs after a warm-up, interleaved. **Row 7f:** the\n", len(r.fleet.times[r.fleet.counts[0]]))
		w("  same releases against a bare-Temporal floor of the same size, run interleaved with them on the same server\n")
		w("  (`bench/fleetfloor.go`): one no-op activity on a build queue, then one on each of the N host queues, from the\n")
		w("  workflow itself up to %d hosts and past that from child workflows of %d hosts each, started at once (1,000\n", fleetFloorChunk, fleetFloorChunk)
		w("  pending activities of the 2,000 a workflow may hold, about 3,000 events per child); its host workers poll as\n")
		w("  relman's installers do (one activity poller, no workflow worker, 100 hosts to a client).\n")
	}
	w("\n")

	w("## Other figures of this run\n\n")
	for _, x := range []orchOut{r.orchMem, r.orchFast, r.orchSQL} {
		w("- %s: history events per run: relman %d, floor %d. Per run in the concurrent burst: dev server CPU\n", x.server, x.relEvents, x.floorEvents)
		w("  relman %s, floor %s; bench process CPU (roles + client) relman %s, floor %s (the last run's).\n",
			ms(x.relSrvCPU), ms(x.floorSrvCPU), ms(x.relSelfCPU), ms(x.floorSelfCP))
		var settles, lat []string
		for _, run := range x.runs {
			settles = append(settles, secs(run.settle))
			lat = append(lat, fmt.Sprintf("%s / %s", ms(pct(run.relLat, 0.5)), ms(pct(run.floorLat, 0.5))))
		}
		w("  Latency p50 per run, relman / floor: %s. The records of each burst's %d releases were written\n", strings.Join(lat, ", "), x.conc)
		w("  %s after its last release ended (outside its time; the next run waits for them).\n", strings.Join(settles, ", "))
	}
	w("- Row 2: %s of data became a %s archive; relman runs %s, floor runs %s (gzip -1 floor: %s).\n",
		sizeLabel(r.art.size), mib(r.art.archive), durs(r.art.relman), durs(r.art.floor), durs(r.art.floorFast))
	w("- Row 4: the %s release (1 host) took %s end to end; its archive was %s.\n", sizeLabel(r.big.size), durs(r.big.relman), mib(r.big.archive))
	w("- Row 3 medians: ")
	for i, n := range r.fan.counts {
		if i > 0 {
			w(", ")
		}
		w("%d host(s) %s", n, ms(pct(r.fan.all(n), 0.5)))
	}
	w(".\n")
	if len(r.fleet.reg) > 0 {
		for _, l := range r.fleet.figures() {
			w("- %s\n", l)
		}
	}
	w("\n")

	// The cluster rows stay as `make bench-cluster` last wrote them.
	if kept := keptCluster(path); kept != "" {
		w("%s\n", kept)
	}
	w("%s\n", strings.TrimSpace(analysis))
	if len(tops) > 0 {
		w("\n## CPU profiles of this run\n\n")
		w("`go tool pprof -top` of the profiles `make bench` takes (`relman ROLE --cpu-profile`): the manager,\n")
		w("the builder and one of %d installers, each its own process over its whole life, under an extra,\n", burstHosts)
		w("unmeasured burst of %d releases sent at once through the gateway into %d environments (row 1's\n", o.profSize, o.profSize)
		w("throughput burst); row 2's builder and one installer over their whole life.\n\n")
		for _, n := range r.profiles {
			for _, mode := range []string{"-top", "-top -cum"} {
				t, ok := tops[n+" "+mode]
				if !ok {
					continue
				}
				w("<details><summary>%s (%s)</summary>\n\n```\n%s\n```\n\n</details>\n\n", n, mode, t)
			}
		}
	}
	return os.WriteFile(path, []byte(strings.TrimRight(sb.String(), "\n")+"\n"), 0o644)
}

func joinInts(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, fmt.Sprint(n))
	}
	return strings.Join(s, ", ")
}

func durs(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, secs(d))
	}
	return strings.Join(s, ", ")
}
