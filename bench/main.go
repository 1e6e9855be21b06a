// Command bench measures how close relman is to what the machine it runs on
// can do: every figure is relman over a floor measured in the same run on
// the same Temporal dev server. `make bench` runs it in full and writes
// BENCHMARKS.md; `make bench-quick` is the smoke test CI runs (small sizes,
// ratios printed, never judged).
//
// Rows: (1) orchestration overhead of a no-op release against a bare
// workflow of the same shape, (2) the artifact path against a shell
// pipeline, (3) install fan-out to 1..50 hosts, (4) peak RSS of a builder
// and an installer moving a 100 MB and a 1 GB artifact, (5) row 1 on the
// SQLite-file dev server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/devserver"
)

type options struct {
	quick    bool
	out      string
	profile  string // directory for CPU profiles; "" = none
	temporal string
	keep     bool
	verbose  bool
	onlySQL  bool
	srvArgs  multiFlag

	repeats  int   // runs of each judged row; the median run is judged
	seq      int   // sequential releases for latency, per run
	conc     int   // concurrent releases for throughput
	artSize  int64 // row 2 artifact
	artRuns  int
	bigSize  int64 // row 4's large artifact
	fan      []int
	fanRuns  int // releases to each size per run
	warmup   int
	profSize int // releases in the profiled (unmeasured) burst
	// Row 8: requests in the burst to one named target.
	burstTo int

	// Rows 6 and 7: the fleet's sizes (registry windows), the release
	// sizes, runs of each, the hosts' lease, each window's length, and
	// how long the hosts take to start.
	onlyFleet   bool
	onlyBurst   bool
	cluster     bool
	noRecords   bool
	onlyUnpaced bool
	fleetHosts  []int
	fleetFan    []int
	fleetRuns   int
	fleetLease  time.Duration
	fleetWindow time.Duration
	fleetSpread time.Duration
}

func main() {
	var o options
	var noProfile bool
	flag.BoolVar(&o.quick, "quick", false, "smoke test: small sizes, about two minutes, ratios printed but not judged")
	flag.StringVar(&o.out, "out", "", "write the report to this Markdown file (full mode default: BENCHMARKS.md)")
	flag.StringVar(&o.profile, "profile", "", "keep CPU profiles in this directory (full mode profiles into a temp dir by default)")
	flag.BoolVar(&noProfile, "no-profile", false, "take no CPU profiles")
	flag.StringVar(&o.temporal, "temporal", "", "the temporal CLI (default: $RELMAN_TEMPORAL_BIN, ./bin/temporal, PATH)")
	flag.BoolVar(&o.keep, "keep", false, "keep the bench's temp dir")
	flag.Var(&o.srvArgs, "server-arg", "an extra argument for `temporal server start-dev` (repeatable), e.g. --dynamic-config-value=K=V")
	flag.BoolVar(&o.onlySQL, "only-row5", false, "debug: run only row 5 and print its figures")
	flag.BoolVar(&o.onlyFleet, "only-fleet", false, "debug: run only rows 6 and 7 and print them")
	flag.BoolVar(&o.cluster, "cluster", false, "run the cluster rows (a PostgreSQL Temporal cluster and SeaweedFS, from `make cluster-tools`) and rewrite their section of -out")
	flag.BoolVar(&o.noRecords, "no-records", false, "analysis: managers keep no closed-transaction records (no artifacts)")
	flag.BoolVar(&o.onlyUnpaced, "only-row1u", false, "debug: run only row 1u and print its figures")
	flag.BoolVar(&o.onlyBurst, "only-burst", false, "debug: run only row 8 and the profiled burst, and print the profiles' tops")
	flag.BoolVar(&o.verbose, "v", false, "print the event timeline of one relman and one floor run")
	flag.Parse()
	if o.quick {
		o.repeats, o.seq, o.conc, o.artSize, o.artRuns, o.bigSize = 2, 4, 10, 5<<20, 1, 20<<20
		o.fan, o.fanRuns, o.warmup, o.profSize, o.burstTo = []int{1, 5}, 2, 1, 10, 10
		o.fleetHosts, o.fleetFan, o.fleetRuns = []int{50, 150}, []int{1, 10, 50}, 2
		o.fleetLease, o.fleetWindow, o.fleetSpread = 6*time.Second, 20*time.Second, 5*time.Second
	} else {
		o.repeats, o.seq, o.conc, o.artSize, o.artRuns, o.bigSize = 3, 12, 100, 100<<20, 3, 1<<30
		o.fan, o.fanRuns, o.warmup, o.profSize, o.burstTo = []int{1, 10, 50}, 5, 3, 100, 100
		o.fleetHosts, o.fleetFan, o.fleetRuns = []int{1000, 3000}, []int{1, 200, 1000}, 3
		o.fleetLease, o.fleetWindow, o.fleetSpread = config.DefaultLease, time.Minute, 20*time.Second
		if o.out == "" {
			o.out = "BENCHMARKS.md"
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, noProfile); err != nil {
		fmt.Fprintln(os.Stderr, "bench: "+err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, noProfile bool) error {
	bin := o.temporal
	if bin == "" {
		var err error
		if bin, err = devserver.Find(); err != nil {
			return err
		}
	}
	root, err := os.MkdirTemp("", "relman-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "bench: keeping", root)
	} else {
		defer os.RemoveAll(root)
	}
	if !noProfile && o.profile == "" && !o.quick {
		o.profile = filepath.Join(root, "profiles")
	}
	if o.profile != "" {
		if o.profile, err = filepath.Abs(o.profile); err != nil {
			return err
		}
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	relman, err := testenv.BuildRelman(ctx, root)
	if err != nil {
		return err
	}
	// The dev servers' request counters give the queries and heartbeats
	// of the server-work table (count.go), which no history shows.
	metrics := ""
	if port := freeMetricsPort(o.srvArgs); port != "" {
		o.srvArgs = append(o.srvArgs, "--metrics-port", port)
		metrics = "127.0.0.1:" + port
	}
	b := &bench{o: o, root: root, repo: filepath.Join(root, "repo"), bin: bin, relman: relman, metrics: metrics}
	if err := makeRepo(b.repo); err != nil {
		return err
	}
	mach := describeMachine(bin)
	start := time.Now()
	res, err := b.all(ctx)
	if err != nil {
		return err
	}
	res.took = time.Since(start)
	if o.cluster {
		printTable(os.Stdout, res.cluster.rows(o.quick))
		if o.out != "" {
			if err := writeCluster(o.out, clusterSection(o, mach, res.cluster)); err != nil {
				return err
			}
			fmt.Println("wrote the cluster rows into", o.out)
		}
		return nil
	}
	if o.onlyFleet {
		printTable(os.Stdout, res.fleet.rows(o.quick))
		printWork(os.Stdout, res.fleet.workRows())
		printFleetFigures(os.Stdout, res.fleet)
		return nil
	}
	if o.onlyBurst {
		printTable(os.Stdout, res.burst.rows())
		tops := profileTops(o.profile, []string{"burst-manager.pprof", "burst-builder.pprof", "burst-installer.pprof"})
		for _, n := range []string{"burst-manager.pprof", "burst-builder.pprof", "burst-installer.pprof"} {
			fmt.Printf("\n%s\n%s\n", n, tops[n+" -top"])
		}
		return nil
	}
	if o.onlyUnpaced {
		res.orchSQL = res.orchFast
	}
	if o.onlySQL || o.onlyUnpaced {
		for i, x := range res.orchSQL.runs {
			fmt.Printf("run %d: latency p50 %.2f (%s / %s), p95 %.2f (%s / %s), throughput %.2f (%.1f/s / %.1f/s)\n", i+1,
				x.p50(), ms(pct(x.relLat, .5)), ms(pct(x.floorLat, .5)), x.p95(), ms(pct(x.relLat, .95)), ms(pct(x.floorLat, .95)),
				x.tput(), float64(res.orchSQL.conc)/x.relBurst.Seconds(), float64(res.orchSQL.conc)/x.floorBurst.Seconds())
		}
		return nil
	}
	rows := res.rows(o)
	fmt.Println()
	printTable(os.Stdout, rows)
	printWork(os.Stdout, res.workRows())
	fmt.Printf("\nbench took %s\n", res.took.Round(time.Second))
	if o.out != "" {
		tops := profileTops(o.profile, res.profiles)
		if err := writeMarkdown(o, o.out, mach, rows, res, tops); err != nil {
			return err
		}
		fmt.Println("wrote", o.out)
	}
	return nil
}

// inMemory runs rows 1-4 on the in-memory dev server.
func (b *bench) inMemory(ctx context.Context, res *results, envs []string) error {
	b.logf("starting the in-memory dev server")
	mem, err := startServer(ctx, b.bin, b.o.srvArgs, "in-memory", "", filepath.Join(b.root, "temporal-mem.log"))
	if err != nil {
		return err
	}
	err = b.onServer(ctx, mem, envs, func() error {
		var err error
		if res.orchMem, err = b.orchestration(ctx, mem, "orch", "mem"); err != nil {
			return fmt.Errorf("row 1: %w", err)
		}
		if res.fan, err = b.fanout(ctx, mem); err != nil {
			return fmt.Errorf("row 3: %w", err)
		}
		if res.art, err = b.artifact(ctx, mem, "row2", b.o.artSize, 3, b.o.artRuns, true, "art"); err != nil {
			return fmt.Errorf("row 2: %w", err)
		}
		if res.big, err = b.artifact(ctx, mem, "row4", b.o.bigSize, 1, 1, false, "mem"); err != nil {
			return fmt.Errorf("row 4: %w", err)
		}
		return nil
	})
	mem.stop()
	if err != nil {
		return err
	}
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type bench struct {
	o    options
	root string
	repo string
	bin  string
	// relman is the relman binary the role processes of row 4 run.
	relman string
	// store is the artifact store of rows 2 and 4 when not the file://
	// store under root (the cluster rows' SeaweedFS).
	store string
	// metrics is the dev servers' Prometheus endpoint (host:port), "" when
	// unknown.
	metrics string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// all runs every row: rows 1-4 on the in-memory dev server, then row 1
// again on the SQLite-file one (row 5).
func (b *bench) all(ctx context.Context) (*results, error) {
	res := &results{}
	if b.o.onlyFleet {
		var err error
		res.fleet, err = b.fleet(ctx)
		return res, err
	}
	if b.o.onlyBurst {
		var err error
		res.burst, err = b.burstRows(ctx)
		return res, err
	}
	if b.o.cluster {
		var err error
		res.cluster, err = b.clusterRows(ctx)
		return res, err
	}
	if b.o.onlyUnpaced {
		var err error
		res.orchFast, err = b.unpaced(ctx, append([]string{"orch"}, burstEnvs("orch", b.o.conc)...))
		return res, err
	}
	envs := append([]string{"orch", "art", "mem"}, burstEnvs("orch", b.o.conc)...)
	for _, n := range b.o.fan {
		envs = append(envs, fmt.Sprintf("fan%d", n))
	}

	// Row 5 first, before rows 2 and 4 leave gigabytes of writeback behind
	// that would stall the SQLite file's fsyncs.
	dropPages()
	b.logf("starting the SQLite-file dev server")
	sq, err := startServer(ctx, b.bin, b.o.srvArgs, "SQLite file", filepath.Join(b.root, "temporal.db"), filepath.Join(b.root, "temporal-sqlite.log"))
	if err != nil {
		return nil, err
	}
	orch := append([]string{"orch"}, burstEnvs("orch", b.o.conc)...)
	err = b.onServer(ctx, sq, orch, func() error {
		var err error
		if res.orchSQL, err = b.orchestration(ctx, sq, "orch", "sqlite"); err != nil {
			return fmt.Errorf("row 5: %w", err)
		}
		return nil
	})
	sq.stop()
	if err != nil || b.o.onlySQL {
		return res, err
	}
	if err := b.inMemory(ctx, res, envs); err != nil {
		return nil, err
	}
	if res.orchFast, err = b.unpaced(ctx, orch); err != nil {
		return nil, err
	}
	if res.burst, err = b.burstRows(ctx); err != nil {
		return nil, fmt.Errorf("row 8: %w", err)
	}
	// Rows 6 and 7 last, on their own server: a thousand hosts' polls
	// and renewals would weigh on every row measured beside them.
	if res.fleet, err = b.fleet(ctx); err != nil {
		return nil, fmt.Errorf("rows 6-7: %w", err)
	}
	if b.o.profile != "" {
		res.profiles = []string{"burst-manager.pprof", "burst-builder.pprof", "burst-installer.pprof", "row2-builder.pprof", "row2-installer.pprof"}
	}
	return res, nil
}

// unpaced is row 1 once more on a dev server without its transfer-queue
// pacing (history.transferProcessorMaxPollRPS, 20/s by default, so every
// task dispatch waits up to 50 ms): what relman itself adds shows plainly.
func (b *bench) unpaced(ctx context.Context, envs []string) (orchOut, error) {
	dropPages()
	b.logf("starting the in-memory dev server without transfer pacing")
	args := append(slices.Clone(b.o.srvArgs), "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000")
	tu, err := startServer(ctx, b.bin, args, "in-memory, unpaced", "", filepath.Join(b.root, "temporal-unpaced.log"))
	if err != nil {
		return orchOut{}, err
	}
	defer tu.stop()
	var out orchOut
	err = b.onServer(ctx, tu, envs, func() error {
		var err error
		if out, err = b.orchestration(ctx, tu, "orch", "unpaced"); err != nil {
			return fmt.Errorf("row 1 unpaced: %w", err)
		}
		return nil
	})
	return out, err
}

// onServer runs the manager and the no-op project's builder in this process
// for the server's life, and f with them.
func (b *bench) onServer(ctx context.Context, s *server, envs []string, f func() error) error {
	if err := s.startManager(b.root, envs, b.o.noRecords); err != nil {
		return err
	}
	bc, err := builderConfig(s.addr, "bench-builder", b.root, b.repo, map[string]config.BuildBehavior{"noop": noopProject(b.repo)})
	if err != nil {
		return err
	}
	r, err := startBuilder(s, bc)
	if err != nil {
		return err
	}
	s.roles = append(s.roles, r)
	if err := s.waitRegistered(ctx, "builder/bench-builder"); err != nil {
		return err
	}
	if err := f(); err != nil {
		return err
	}
	return ctx.Err()
}
