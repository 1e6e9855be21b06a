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

type row struct {
	id, what      string
	relman, floor string
	ratio         float64
	goal          string
	met           string // yes, no, or "-" when not judged
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
	orch := func(id string, x orchOut, judged bool) {
		j := func(ratio float64, kind goalKind, limit float64) string {
			if !judged {
				return "-"
			}
			return judge(q, ratio, kind, limit, true)
		}
		p50r, p50f := pct(x.relLat, 0.5), pct(x.floorLat, 0.5)
		p95r, p95f := pct(x.relLat, 0.95), pct(x.floorLat, 0.95)
		lr50, lr95 := float64(p50r)/float64(p50f), float64(p95r)/float64(p95f)
		tr := x.relTput() / x.floorTput()
		rows = append(rows,
			row{id, fmt.Sprintf("no-op release, 3 hosts, %s: latency p50 (n=%d)", x.server, len(x.relLat)), ms(p50r), ms(p50f), lr50, "≤ 1.3", j(lr50, atMost, 1.3)},
			row{id, fmt.Sprintf("no-op release, 3 hosts, %s: latency p95 (n=%d)", x.server, len(x.relLat)), ms(p95r), ms(p95f), lr95, "≤ 1.3", j(lr95, atMost, 1.3)},
			row{id, fmt.Sprintf("no-op release, 3 hosts, %s: throughput, %d concurrent", x.server, x.conc),
				fmt.Sprintf("%.1f /s", x.relTput()), fmt.Sprintf("%.1f /s", x.floorTput()), tr, "≥ 0.8", j(tr, atLeast, 0.8)},
		)
	}
	orch("1", r.orchMem, true)
	orch("1u", r.orchFast, false)

	a := r.art
	ar := float64(minDur(a.relman)) / float64(minDur(a.floor))
	rows = append(rows, row{"2", fmt.Sprintf("artifact path: %s mixed data to %d hosts, end to end (best of %d)", sizeLabel(a.size), a.hosts, len(a.relman)),
		secs(minDur(a.relman)), secs(minDur(a.floor)), ar, "≤ 1.0", judge(q, ar, atMost, 1.0, true)})
	af := float64(minDur(a.relman)) / float64(minDur(a.floorFast))
	rows = append(rows, row{"2g1", "the same against a floor that gzips at level 1 (`tar cf - | gzip -1`), as relman does",
		secs(minDur(a.relman)), secs(minDur(a.floorFast)), af, "-", "-"})

	f := r.fan
	base := f.counts[0]
	top := slices.Max(f.counts)
	for _, n := range f.counts[1:] {
		m, m1 := pct(f.times[n], 0.5), pct(f.times[base], 0.5)
		ratio := float64(m) / float64(m1)
		goal, kind := "-", none
		if n == top {
			goal, kind = "≤ 2.0", atMost
		}
		rows = append(rows, row{"3", fmt.Sprintf("fan-out: no-op release to %d hosts vs %d (median of %d)", n, base, len(f.times[n])),
			ms(m), ms(m1), ratio, goal, judge(q, ratio, kind, 2.0, true)})
	}

	g := r.big
	for _, who := range []struct {
		name         string
		small, large int64
	}{{"builder", a.builderRSS, g.builderRSS}, {"installer", a.installerRSS, g.installerRSS}} {
		rb := float64(who.small) / rssBudget
		rows = append(rows, row{"4", fmt.Sprintf("%s peak RSS, %s artifact (vs the 100 MiB budget)", who.name, sizeLabel(a.size)),
			mib(who.small), "100 MiB", rb, "≤ 1.0", judge(q, rb, atMost, 1.0, true)})
		rf := float64(who.large) / float64(who.small)
		rows = append(rows, row{"4", fmt.Sprintf("%s peak RSS, %s artifact (vs the %s run: flat)", who.name, sizeLabel(g.size), sizeLabel(a.size)),
			mib(who.large), mib(who.small), rf, "≤ 1.25, < 100 MiB", judge(q, rf, atMost, 1.25, who.large < rssBudget)})
	}

	orch("5", r.orchSQL, true)
	return append(rows, r.fleet.rows(q)...)
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\twhat\trelman\tfloor\tratio\tgoal\tmet")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.id, r.what, r.relman, r.floor, fmtRatio(r.ratio), r.goal, r.met)
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
	w("measured in the same run, on the same Temporal dev server. `make bench` runs everything (about\n")
	w("11 minutes on 2 cores, 8 of them rows 6 and 7) and rewrites this file; `make bench-quick` is the CI smoke test (small\n")
	w("sizes, ratios printed, never judged). No test asserts a timing. The code is in `bench/`.\n\n")
	w("## Machine\n\n")
	w("| | |\n| --- | --- |\n")
	w("| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | Linux %s |\n", m.CPUs, m.Model, m.MemTotal, m.Kernel)
	w("| Go | %s |\n| Temporal CLI | %s |\n| load average at start | %s |\n| date | %s |\n| bench took | %s |\n\n",
		m.Go, strings.ReplaceAll(m.Temporal, "\n", " "), m.Load, m.Date, r.took.Round(time.Second))
	w("## Results\n\n")
	w("| row | what | relman | floor | ratio | goal | met? |\n| --- | --- | ---: | ---: | ---: | --- | --- |\n")
	for _, x := range rows {
		w("| %s | %s | %s | %s | %s | %s | %s |\n", x.id, strings.ReplaceAll(x.what, "|", "\\|"), x.relman, x.floor, fmtRatio(x.ratio), x.goal, x.met)
	}
	w("\n## What is inside each timing\n\n")
	w("- **Rows 1 and 5.** relman: `transaction.Start` (the CLI's and gateway's path) to the `Release`\n")
	w("  workflow's result with status `INSTALL_COMPLETED`: plan activity (registry query), build activity\n")
	w("  (git checkout from a local bare-cache, step `true`, tar.gz of `app/`, upload to the `file://`\n")
	w("  store), 3 install activities in parallel (download, sha256, unarchive, swap), 3 search\n")
	w("  attribute upserts. Floor: `ExecuteWorkflow` to the result of a bare workflow running one no-op\n")
	w("  activity on a build queue, then one on each of 3 host queues in parallel. Both run their\n")
	w("  workflow worker, build worker and 3 host workers in the bench process, one client each, with\n")
	w("  the SDK's default worker options. Latency: sequential runs, relman and floor interleaved, after\n")
	w("  %d warm-up runs each. Throughput: %d runs started at once, count over wall time to the last.\n", o.warmup, o.conc)
	w("- **Row 2.** relman: release start to `INSTALL_COMPLETED` of a project whose build step is\n")
	w("  `cp -r DATA out` (DATA: half random bytes, half repetitive log text, outside the repository),\n")
	w("  on a builder process and %d installer processes (the bench binary re-executed, running\n", r.art.hosts)
	w("  `workers.Builder` / `workers.Installer`). Floor: one `sh` running `cp -r DATA out`, `tar czf`,\n")
	w("  then for each host `sha256sum` and `tar xzf`, one after the other. Install dirs are removed and\n")
	w("  `sync` runs before each timing, outside it. Best of %d runs each, interleaved.\n", len(r.art.relman))
	w("- **Row 3.** The row 1 release to environments served by 1, ..., %d hosts; all hosts run in one\n", slices.Max(r.fan.counts))
	w("  process on one client, each with its own host queue and install root. The floor is the\n")
	w("  1-host time; medians of %d runs, interleaved.\n", len(r.fan.times[r.fan.counts[0]]))
	w("- **Row 4.** Peak RSS (`VmHWM` of `/proc/<pid>/status`) of the builder process and the largest of\n")
	w("  the installer processes: the row 2 processes for the %s artifact, fresh ones (1 host) for %s.\n", sizeLabel(r.art.size), sizeLabel(r.big.size))
	w("  `cp`, `git` and `tar` are child processes and not counted.\n")
	w("- **Row 5.** Row 1 again on a dev server started with `--db-filename` (SQLite file on disk).\n")
	if len(r.fleet.reg) > 0 {
		w("- **Rows 6 and 7** run last, on a fresh in-memory dev server whose frontend allows the fleet's long polls\n")
		w("  (`frontend.namespaceCount`, as a production cluster with that many hosts needs). The hosts are real installers\n")
		w("  started by `testenv.StartFleet` in the bench process (each `workers.Run` with its own host id, queue,\n")
		w("  registration and install root; 100 hosts share one client), over %s; the manager is its own process.\n", r.fleet.reg[0].window/4)
		w("  **Row 6:** after every host has registered and one more lease has passed, the hosts renew for %s:\n", r.fleet.reg[0].window)
		w("  renewals counted as they end, each one's time from the renewal call to the server's answer, and every\n")
		w("  registration or renewal that returned an error. The floor is the hosts' schedule (one renewal per host every\n")
		w("  lease/3). **Row 7:** the row 1 no-op release to environments served by %s of those hosts while all of\n", joinInts(r.fleet.counts))
		w("  them renew; the floor is the 1-host release; medians of %d runs after a warm-up, interleaved.\n", len(r.fleet.times[r.fleet.counts[0]]))
	}
	w("\n")

	w("## Other figures of this run\n\n")
	for _, x := range []orchOut{r.orchMem, r.orchFast, r.orchSQL} {
		w("- %s: history events per run: relman %d, floor %d. Per run in the concurrent burst: dev server CPU\n", x.server, x.relEvents, x.floorEvents)
		w("  relman %s, floor %s; bench process CPU (roles + client) relman %s, floor %s.\n",
			ms(x.relSrvCPU), ms(x.floorSrvCPU), ms(x.relSelfCPU), ms(x.floorSelfCP))
	}
	w("- Row 2: %s of data became a %s archive; relman runs %s, floor runs %s (gzip -1 floor: %s).\n",
		sizeLabel(r.art.size), mib(r.art.archive), durs(r.art.relman), durs(r.art.floor), durs(r.art.floorFast))
	w("- Row 4: the %s release (1 host) took %s end to end; its archive was %s.\n", sizeLabel(r.big.size), durs(r.big.relman), mib(r.big.archive))
	w("- Row 3 medians: ")
	for i, n := range r.fan.counts {
		if i > 0 {
			w(", ")
		}
		w("%d host(s) %s", n, ms(pct(r.fan.times[n], 0.5)))
	}
	w(".\n")
	if len(r.fleet.reg) > 0 {
		for _, l := range r.fleet.figures() {
			w("- %s\n", l)
		}
	}
	w("\n")

	w("%s\n", strings.TrimSpace(analysis))
	if len(tops) > 0 {
		w("\n## CPU profiles of this run\n\n")
		w("`go tool pprof -top` of the profiles `make bench` takes: row 1 from an extra, unmeasured burst of\n")
		w("%d releases (manager, builder and 3 installers in one process); row 2 from the builder and one\n", o.profSize)
		w("installer process over their whole life; row 3 from 3 extra releases to %d hosts.\n\n", slices.Max(r.fan.counts))
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
