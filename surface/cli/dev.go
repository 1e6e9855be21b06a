package cli

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/telemetry"
	"github.com/relman/relman/internal/temporalclient"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/devstack"
	"github.com/relman/relman/workflows"
)

func (a *app) devCommand() *cobra.Command {
	var o devstack.Options
	var demo, once bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run relman on this machine: Temporal dev server, manager, builder and two installer hosts",
		Long: `Start the pinned Temporal dev server (state in a SQLite file under --dir, Web UI
on --ui-port), a manager, a builder and two installer hosts (host-a, host-b)
from the example configs, and a git repository of the example project
"template". Ctrl-C stops everything; starting again on the same --dir keeps
transactions and registrations.

With --demo it then releases template to test with live progress and prints
what was installed on each host; --once stops the stack after the demo.`,
		Example: `  relman dev --dir .relman/dev
  relman dev --dir .relman/dev --demo
  relman dev --dir .relman/ci --port 17233 --ui-port 18233 --demo --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := a.opts.Stdout
			fmt.Fprintf(out, "starting the relman dev stack in %s ...\n", o.Dir)
			o.Out = out
			tel, err := telemetry.Setup(ctx, "relman-dev", a.opts.LookupEnv, a.opts.Stderr)
			if err != nil {
				return err
			}
			defer tel.Shutdown(context.WithoutCancel(ctx))
			o.With = tel.Apply
			if !cmd.Flags().Changed("gateway-port") && o.GatewayPort > 0 && portInUse(o.GatewayPort) {
				// The default port is taken (another dev stack, a manager):
				// a dev stack still comes up, on a free port.
				fmt.Fprintf(out, "port %d is in use; the XML-RPC gateway takes a free port instead\n", o.GatewayPort)
				o.GatewayPort = 0
			}
			s, err := devstack.Start(ctx, o)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(out, "stopping the dev stack ...")
				s.Stop()
				fmt.Fprintln(out, "stopped")
			}()
			fmt.Fprintf(out, "Temporal   %s (namespace %s)\n", s.Address, s.Retention.Namespace)
			// How long a closed transaction stays readable, and what answers
			// after Temporal deleted it.
			after := "then gone (set artifacts in " + filepath.Join(s.Dir, "manager.yaml") + " to keep records)"
			if s.Records != "" {
				after = "then relman's records of closed transactions in " + s.Records
			}
			fmt.Fprintf(out, "retention  %s in Temporal, %s\n", temporalclient.FormatRetention(s.Retention.TTL), after)
			if s.UIURL != "" {
				fmt.Fprintf(out, "Web UI     %s/namespaces/default/workflows\n", s.UIURL)
			}
			if s.GatewayURL != "" {
				fmt.Fprintf(out, "XML-RPC    %s (request_action, query_transaction, ...)\n", s.GatewayURL)
				fmt.Fprintf(out, "API        %sapi/v1/<method> (JSON); RELMAN_MANAGER_URL=%s relman ... goes through it\n", s.GatewayURL, s.GatewayURL)
			}
			fmt.Fprintf(out, "state      %s (configs, logs, artifacts, temporal.db)\n", s.Dir)
			fmt.Fprintf(out, "configs    %s: temporal address %s", strings.Join(devstack.Configs, ", "), s.Address)
			if s.GatewayURL != "" {
				fmt.Fprintf(out, ", manager listen_port %s", gatewayPort(s.GatewayURL))
			}
			fmt.Fprintln(out)
			fmt.Fprintf(out, "project    template, git repository %s\n", filepath.Join(s.Dir, "repos", "template"))
			for _, h := range sortedKeys(s.Hosts) {
				fmt.Fprintf(out, "%-10s install root %s\n", h, s.Hosts[h])
			}
			fmt.Fprintf(out, "try        relman release template --env test --follow --address %s\n", s.Address)
			if demo {
				if err := a.demo(ctx, s); err != nil {
					return err
				}
			}
			if once {
				return nil
			}
			fmt.Fprintln(out, "running; press Ctrl-C to stop")
			select {
			case <-ctx.Done():
			case err := <-s.Errs():
				return err
			case <-s.ServerExited():
				return fmt.Errorf("the Temporal dev server stopped on its own; see %s", filepath.Join(s.Dir, "logs", "temporal.log"))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "dir", ".relman/dev", "directory for all of the stack's state")
	f.IntVar(&o.Port, "port", 7233, "Temporal gRPC port; 0 for a free one")
	f.IntVar(&o.UIPort, "ui-port", 8233, "Temporal Web UI port; -1 for none")
	f.IntVar(&o.GatewayPort, "gateway-port", config.DefaultListenPort, "the manager's XML-RPC gateway port on 127.0.0.1; 0 for a free one, -1 for none")
	f.StringVar(&o.TemporalBin, "temporal-bin", "", "temporal CLI to run (default: $RELMAN_TEMPORAL_BIN, ./bin/temporal, PATH)")
	f.BoolVar(&demo, "demo", false, "release the example project to test once the stack is up")
	f.BoolVar(&once, "once", false, "stop after the demo instead of running until Ctrl-C")
	return cmd
}

// demo releases template to test with live progress, then shows the
// transaction's Web UI link and the files on each host.
func (a *app) demo(ctx context.Context, s *devstack.Stack) error {
	out := a.opts.Stdout
	req := workflows.Request{Project: "template", Action: workflows.ActionInstall, Env: "test", Source: workflows.Selector{Trunk: true}, Requester: requester(a.opts.LookupEnv)}
	txid, err := transaction.Start(ctx, s.Client, workflows.DefaultManagerQueue, "", req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nrelease of template to test: transaction %s\n", txid)
	wctx, cancel := context.WithTimeout(ctx, config.DefaultDevStartWait)
	defer cancel()
	d, err := a.follow(wctx, temporalWait(s.Client), txid)
	if err != nil {
		return fmt.Errorf("demo release %s: %w", txid, err)
	}
	printSummary(out, d)
	if s.UIURL != "" {
		fmt.Fprintf(out, "Web UI     %s/namespaces/default/workflows/%s\n", s.UIURL, txid)
	}
	fmt.Fprintf(out, "history    relman history %s --address %s\n", txid, s.Address)
	for _, h := range sortedKeys(s.Hosts) {
		fmt.Fprintf(out, "files on %s:\n", h)
		root := s.Hosts[h]
		_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			fi, _ := de.Info()
			size := int64(0)
			if fi != nil {
				size = fi.Size()
			}
			fmt.Fprintf(out, "  %s (%d bytes)\n", filepath.Join(root, rel), size)
			return nil
		})
	}
	if !d.Status.Succeeded(d.Request.Action) {
		return &exitError{code: ExitReleaseFailed, err: fmt.Errorf("demo release %s ended %s: %s", txid, d.Status, d.Reason)}
	}
	return nil
}

// portInUse reports whether something already listens on the local port.
func portInUse(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// gatewayPort is the port of the gateway's URL.
func gatewayPort(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Port()
}
