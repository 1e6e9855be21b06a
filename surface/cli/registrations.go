package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/workflows"
)

func (a *app) registrationsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "registrations",
		Short: "List the builders and installer hosts registered with the manager, what each advertises, and their leases",
		Example: `  relman registrations
  relman registrations --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			ls, err := a.registrations(cmd.Context(), now)
			if registry.Partial(err) != nil {
				// The rest is still worth showing, and what is missing.
				fmt.Fprintf(a.opts.Stderr, "warning: %v\n", err)
			} else if err != nil {
				return err
			}
			if a.output == "json" {
				if ls == nil {
					ls = []workflows.Lease{}
				}
				return a.printJSON(ls)
			}
			tw := tabwriter.NewWriter(a.opts.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ROLE\tID\tADVERTISES\tRENEWED\tEXPIRES IN")
			for _, l := range ls {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", l.Role, l.ID, advertises(l), now.Sub(l.Renewed).Round(time.Second), l.Expires.Sub(now).Round(time.Second))
			}
			return tw.Flush()
		},
	}
}

// registrations lists the leases, through the manager's API or on
// Temporal.
func (a *app) registrations(ctx context.Context, now time.Time) ([]workflows.Lease, error) {
	return apiOrTemporal(a, func(api *apiClient) ([]workflows.Lease, error) {
		return api.registrations(ctx)
	}, func(c client.Client) ([]workflows.Lease, error) {
		return registry.Registry{Client: c, ID: a.registry, ManagerQueue: a.queue}.List(ctx, now)
	})
}

func advertises(l workflows.Lease) string {
	if l.Role == workflows.RoleBuilder {
		p := append([]string(nil), l.Projects...)
		sort.Strings(p)
		return "projects " + strings.Join(p, ",")
	}
	envs := make([]string, 0, len(l.Targets))
	for e := range l.Targets {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	var parts []string
	for _, e := range envs {
		t := append([]string(nil), l.Targets[e]...)
		sort.Strings(t)
		parts = append(parts, e+":"+strings.Join(t, ","))
	}
	return strings.Join(parts, " ")
}
