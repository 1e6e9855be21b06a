package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// follow shows a release live until it ends: progress bars on a terminal,
// plain timestamped lines otherwise (logs, CI, pipes).
func (a *app) follow(ctx context.Context, c client.Client, txid string) (*workflows.Detail, error) {
	if a.opts.IsTerminal() && a.output == "text" {
		return followBars(ctx, c, txid, a.opts.Stdout)
	}
	w := a.opts.Stdout
	if a.output == "json" {
		w = a.opts.Stderr
	}
	return followLines(ctx, c, txid, w)
}

// followLines prints each change once: status changes, then each host's
// install as it starts and ends.
func followLines(ctx context.Context, c client.Client, txid string, w io.Writer) (*workflows.Detail, error) {
	seenEvents := 0
	seenInstall := map[string]workflows.InstallState{}
	var seenCount workflows.HostsSummary
	return transaction.Wait(ctx, c, txid, func(d *workflows.Detail) {
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

// followBars draws one bar for the build and one per (host, target).
func followBars(ctx context.Context, c client.Client, txid string, w io.Writer) (*workflows.Detail, error) {
	p := mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(120*time.Millisecond))
	build := p.AddSpinner(1, mpb.PrependDecorators(decor.Name("build   ", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.OnComplete(decor.Elapsed(decor.ET_STYLE_GO), "done")))
	status := workflows.Status("")
	statusName := func(decor.Statistics) string { return string(status) }
	bars := map[string]*mpb.Bar{}
	d, err := transaction.Wait(ctx, c, txid, func(d *workflows.Detail) {
		status = d.Status
		if d.Status != workflows.StatusStarted && build.Current() == 0 {
			build.SetCurrent(1)
		}
		// A large release: one bar for all its installs.
		if ip := d.InstallPages; ip != nil {
			b, ok := bars[""]
			if !ok {
				b = p.AddBar(int64(ip.Total), mpb.PrependDecorators(decor.Name(fmt.Sprintf("%d installs", ip.Total), decor.WCSyncSpaceR)),
					mpb.AppendDecorators(decor.CountersNoUnit("%d / %d")))
				bars[""] = b
			}
			b.SetCurrent(int64(ip.Total - ip.Summary.Pending))
		}
		for _, in := range d.Installs {
			k := in.Host + "/" + in.Target
			b, ok := bars[k]
			if !ok {
				name := fmt.Sprintf("%s %s", in.Host, in.Target)
				b = p.AddBar(1, mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
					mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return "" })))
				bars[k] = b
			}
			switch in.State {
			case workflows.InstallInstalled:
				b.SetCurrent(1)
			case workflows.InstallFailedS, workflows.InstallCancelled:
				b.Abort(false)
			}
		}
		if d.Status.Final(d.Request.Action) {
			if build.Current() == 0 {
				build.Abort(false)
			}
			for _, b := range bars {
				if !b.Completed() {
					b.Abort(false)
				}
			}
		}
	})
	_ = statusName
	build.Abort(false)
	for _, b := range bars {
		b.Abort(false)
	}
	p.Wait()
	return d, err
}
