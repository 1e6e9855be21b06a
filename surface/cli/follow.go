package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// waitFunc polls a transaction until it ends, calling onChange with each
// detail it reads: transaction.Wait on a Temporal client, or the manager's
// API (api.go).
type waitFunc func(ctx context.Context, txid string, onChange func(*workflows.Detail)) (*workflows.Detail, error)

// temporalWait is transaction.Wait on c.
func temporalWait(c client.Client) waitFunc {
	return func(ctx context.Context, txid string, onChange func(*workflows.Detail)) (*workflows.Detail, error) {
		return transaction.Wait(ctx, c, txid, onChange)
	}
}

// follow shows a release live until it ends: progress bars on a terminal,
// plain timestamped lines otherwise (logs, CI, pipes).
func (a *app) follow(ctx context.Context, wait waitFunc, txid string) (*workflows.Detail, error) {
	if a.opts.IsTerminal() && a.output == "text" {
		return followBars(ctx, wait, txid, a.opts.Stdout)
	}
	w := a.opts.Stdout
	if a.output == "json" {
		w = a.opts.Stderr
	}
	return followLines(ctx, wait, txid, w)
}

// followLines prints each change once: status changes, then each host's
// install as it starts and ends.
func followLines(ctx context.Context, wait waitFunc, txid string, w io.Writer) (*workflows.Detail, error) {
	seenEvents := 0
	seenInstall := map[string]workflows.InstallState{}
	var seenCount workflows.HostsSummary
	return wait(ctx, txid, func(d *workflows.Detail) {
		for ; seenEvents < len(d.Events); seenEvents++ {
			e := d.Events[seenEvents]
			if e.Status != "" {
				fmt.Fprintf(w, "%s  %-17s %s\n", stamp(e.Time), e.Status, e.Detail)
			}
		}
		// A large release: its count by state, each time it changes.
		if p := d.InstallPages; p != nil && p.Summary != seenCount {
			seenCount = p.Summary
			fmt.Fprintf(w, "%s  %-17s %s\n", stamp(time.Time{}), "installs", installCount(p.Summary))
		}
		for _, in := range d.Installs {
			k := in.Host + "/" + in.Target
			if seenInstall[k] == in.State {
				continue
			}
			seenInstall[k] = in.State
			at := in.Started
			if !in.Ended.IsZero() {
				at = in.Ended
			}
			line := fmt.Sprintf("%s  %-17s %s on %s", stamp(at), "install "+string(in.State), in.Target, in.Host)
			switch {
			case in.Error != "":
				line += ": " + in.Error
			case in.Path != "":
				line += " at " + in.Path
			}
			fmt.Fprintln(w, line)
		}
	})
}

// installCount says how far a release's installs are.
func installCount(h workflows.HostsSummary) string {
	s := fmt.Sprintf("%d of %d done: %d installed, %d failed, %d skipped", h.Total-h.Pending, h.Total, h.Installed, h.Failed, h.Skipped)
	if h.RolledBack > 0 {
		s += fmt.Sprintf(", %d rolled back", h.RolledBack)
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Local().Format("15:04:05.000")
}

// followBars draws one line for the build and one bar per (host, named
// target) until the release ends.
func followBars(ctx context.Context, wait waitFunc, txid string, w io.Writer) (*workflows.Detail, error) {
	b := newBars(ctx, w)
	d, err := wait(ctx, txid, b.show)
	b.close()
	return d, err
}

// bars is the live picture of one release on a terminal. Each line ends in
// what became of its step: the build "done", or "failed", "rejected",
// "cancelled" when the release ended without it; each install its state.
// A line that ended shows no spinner or bar.
type bars struct {
	p     *mpb.Progress
	build *mpb.Bar
	mu    sync.Mutex
	// buildEnd is "" while the build runs, then what became of it.
	buildEnd string
	installs map[string]*mpb.Bar
	states   map[string]workflows.InstallState
	// all is a large release's one bar for all its installs, whose detail
	// carries their count by state (InstallPages), not the installs.
	all *mpb.Bar
}

func newBars(ctx context.Context, w io.Writer, opts ...mpb.ContainerOption) *bars {
	b := &bars{installs: map[string]*mpb.Bar{}, states: map[string]workflows.InstallState{}}
	b.p = mpb.NewWithContext(ctx, append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(120 * time.Millisecond)}, opts...)...)
	elapsed := decor.Elapsed(decor.ET_STYLE_GO)
	b.build = b.p.AddSpinner(1,
		mpb.PrependDecorators(decor.Name("build   ", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(st decor.Statistics) string {
			if end := b.ended(); end != "" {
				return end
			}
			s, _ := elapsed.Decor(st)
			return s
		})),
		mpb.BarFillerClearOnComplete(), mpb.BarFillerClearOnAbort())
	return b
}

func (b *bars) ended() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buildEnd
}

func (b *bars) state(k string) workflows.InstallState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.states[k]
}

// show draws what the detail says.
func (b *bars) show(d *workflows.Detail) {
	final := d.Status.Final(d.Request.Action)
	b.mu.Lock()
	switch {
	case b.buildEnd != "":
	case len(d.Artifacts) > 0:
		b.buildEnd = "done"
	case final:
		b.buildEnd = stepEnd(d.Status)
	}
	buildEnd := b.buildEnd
	b.mu.Unlock()
	switch {
	case buildEnd == "done":
		b.build.SetCurrent(1)
	case buildEnd != "":
		b.build.Abort(false)
	}
	if ip := d.InstallPages; ip != nil {
		if b.all == nil {
			b.all = b.p.AddBar(int64(ip.Total),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%d installs", ip.Total), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.CountersNoUnit("%d / %d")))
		}
		b.all.SetCurrent(int64(ip.Total - ip.Summary.Pending))
		if final && !b.all.Completed() {
			b.all.Abort(false)
		}
	}
	for _, in := range d.Installs {
		k := in.Host + "/" + in.Target
		bar, ok := b.installs[k]
		if !ok {
			bar = b.p.AddBar(1,
				mpb.PrependDecorators(decor.Name(in.Host+" "+in.Target, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return string(b.state(k)) })),
				mpb.BarFillerClearOnAbort())
			b.installs[k] = bar
		}
		b.mu.Lock()
		b.states[k] = in.State
		b.mu.Unlock()
		switch in.State {
		case workflows.InstallInstalled:
			bar.SetCurrent(1)
		case workflows.InstallFailedS, workflows.InstallCancelled, workflows.InstallSkipped:
			bar.Abort(false)
		}
	}
	if final {
		for k, bar := range b.installs {
			if !bar.Completed() {
				b.mu.Lock()
				if st := b.states[k]; st == workflows.InstallPending || st == workflows.InstallInstalling {
					b.states[k] = workflows.InstallState(stepEnd(d.Status))
				}
				b.mu.Unlock()
				bar.Abort(false)
			}
		}
	}
}

// close ends every line still running (the follow stopped early) and
// waits for the last picture.
func (b *bars) close() {
	b.mu.Lock()
	if b.buildEnd == "" {
		b.buildEnd = "stopped following"
	}
	b.mu.Unlock()
	if !b.build.Completed() {
		b.build.Abort(false)
	}
	for _, bar := range b.installs {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	if b.all != nil && !b.all.Completed() {
		b.all.Abort(false)
	}
	b.p.Wait()
}

// stepEnd is what became of a step that did not finish when its release
// ended in status s.
func stepEnd(s workflows.Status) string {
	switch s {
	case workflows.StatusBuildFailed, workflows.StatusInstallFailed, workflows.StatusRollbackFailed:
		return "failed"
	case workflows.StatusRejected:
		return "rejected"
	case workflows.StatusCancelled:
		return "cancelled"
	}
	return strings.ToLower(string(s))
}
