package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relman/relman/harness/testcluster"
)

// clusterOut is the cluster rows: row 1 on a Temporal cluster of four
// service processes on PostgreSQL (C1), and row 2 there with the artifact
// store on file:// and on SeaweedFS's S3 (C2).
type clusterOut struct {
	orch    orchOut
	artFile artOut
	artS3   artOut
	server  string // the cluster's Temporal server version line
	took    time.Duration
}

// clusterRows runs the cluster rows on the tools `make cluster-tools`
// builds (testcluster.FindTools: RELMAN_CLUSTER_BIN or ./bin).
func (b *bench) clusterRows(ctx context.Context) (clusterOut, error) {
	out := clusterOut{}
	t0 := time.Now()
	tools := testcluster.FindTools("")
	b.logf("cluster: starting PostgreSQL and the four Temporal services")
	c, err := testcluster.Start(ctx, tools, filepath.Join(b.root, "cluster"))
	if err != nil {
		return out, fmt.Errorf("start the cluster: %w", err)
	}
	s := &server{label: "PostgreSQL cluster", addr: c.Address(), cluster: c}
	defer s.stop()
	for _, name := range testcluster.Services {
		s.pids = append(s.pids, c.Pid(name))
	}
	if s.c, err = dial(s.addr, "bench-client"); err != nil {
		return out, err
	}
	b.logf("cluster: starting SeaweedFS")
	s3, err := testcluster.StartS3(ctx, tools.Weed, filepath.Join(b.root, "s3"), "relman-bench")
	if err != nil {
		return out, fmt.Errorf("start SeaweedFS: %w", err)
	}
	defer s3.Stop()
	// The roles read S3 credentials from the usual variables.
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return out, err
		}
	}
	envs := append([]string{"orch", "art"}, burstEnvs("orch", b.o.conc)...)
	err = b.onServer(ctx, s, envs, func() error {
		var err error
		if out.orch, err = b.orchestration(ctx, s, "orch", "cluster"); err != nil {
			return fmt.Errorf("row C1: %w", err)
		}
		if out.artFile, err = b.artifact(ctx, s, "c2-file", b.o.artSize, 3, b.o.artRuns, true, "art"); err != nil {
			return fmt.Errorf("row C2, file://: %w", err)
		}
		b.store = s3.StoreURL()
		defer func() { b.store = "" }()
		if out.artS3, err = b.artifact(ctx, s, "c2-s3", b.o.artSize, 3, b.o.artRuns, true, "art"); err != nil {
			return fmt.Errorf("row C2, SeaweedFS: %w", err)
		}
		return nil
	})
	out.took = time.Since(t0)
	return out, err
}

// rows are the cluster rows, judged by the goals of rows 1 and 2.
func (c clusterOut) rows(quick bool) []row {
	rows := orchRows("C1", c.orch, quick)
	for _, a := range []struct {
		store string
		out   artOut
	}{{"file://", c.artFile}, {"SeaweedFS (S3)", c.artS3}} {
		rows = append(rows, artRow("C2", fmt.Sprintf("store %s, ", a.store), a.out, quick))
	}
	return rows
}

// clusterSection is BENCHMARKS.md's section of the cluster rows, between
// clusterBegin and clusterEnd: `make bench-cluster` rewrites it, `make
// bench` keeps it as it is.
func clusterSection(o options, m machine, c clusterOut) string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("%s\n## On a Temporal cluster and an S3 store (`make bench-cluster`)\n\n", clusterBegin)
	w("Written by `make bench-cluster` on %s (load average at start %s; it took %s), kept as it is by\n", m.Date, m.Load, c.took.Round(time.Second))
	w("`make bench`. The Temporal server is the one `make test-cluster` runs (`harness/testcluster`):\n")
	w("PostgreSQL, and the frontend, history, matching and worker services as four processes, on this\n")
	w("machine; the store is SeaweedFS's S3 gateway (`s3://…&use_path_style=true`). Row C1 is row 1\n")
	w("(default config, %d runs) against the bare workflow on the same cluster; row C2 is row 2 on the\n", o.repeats)
	w("cluster, once with the file:// store and once with SeaweedFS, each against its shell floor.\n\n")
	w("| row | what | relman | floor | ratio | min / median / max | goal | met? |\n| --- | --- | ---: | ---: | ---: | ---: | --- | --- |\n")
	for _, x := range c.rows(o.quick) {
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", x.id, strings.ReplaceAll(x.what, "|", "\\|"), x.relman, x.floor, fmtRatio(x.ratio), x.spread(), x.goal, x.met)
	}
	var lat, settles []string
	for _, run := range c.orch.runs {
		lat = append(lat, fmt.Sprintf("%s / %s", ms(pct(run.relLat, 0.5)), ms(pct(run.floorLat, 0.5))))
		settles = append(settles, secs(run.settle))
	}
	w("\nRow C1 latency p50 per run, relman / floor: %s; history events per run relman %d, floor %d;\n", strings.Join(lat, ", "), c.orch.relEvents, c.orch.floorEvents)
	w("the records of each burst were written %s after it. Per release in the burst, the four\n", strings.Join(settles, ", "))
	w("services' CPU: relman %s, floor %s. Row C2 runs (relman): file:// %s; SeaweedFS %s.\n",
		ms(c.orch.relSrvCPU), ms(c.orch.floorSrvCPU), durs(c.artFile.relman), durs(c.artS3.relman))
	w("Peak RSS over row C2's runs (the 100 MiB budget of row 4): builder %s with file://, %s with SeaweedFS;\n", mib(c.artFile.builderRSS), mib(c.artS3.builderRSS))
	w("the largest installer %s with file://, %s with SeaweedFS.\n", mib(c.artFile.installerRSS), mib(c.artS3.installerRSS))
	w("%s\n", clusterEnd)
	return sb.String()
}

const (
	clusterBegin = "<!-- cluster rows: make bench-cluster -->"
	clusterEnd   = "<!-- end of cluster rows -->"
)

// keptCluster is the cluster section of the file at path, or "".
func keptCluster(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.Index(s, clusterBegin), strings.Index(s, clusterEnd)
	if i < 0 || j < i {
		return ""
	}
	return s[i:j+len(clusterEnd)] + "\n"
}

// writeCluster puts the cluster section into the file at path in place of
// the one there, or before its analysis when it has none.
func writeCluster(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w (run `make bench` first)", path, err)
	}
	s := string(b)
	if i, j := strings.Index(s, clusterBegin), strings.Index(s, clusterEnd); i >= 0 && j > i {
		s = s[:i] + strings.TrimSuffix(section, "\n") + s[j+len(clusterEnd):]
	} else if k := strings.Index(s, analysisHeading); k >= 0 {
		s = s[:k] + section + "\n" + s[k:]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
