package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/temporalclient"
)

func (a *app) namespaceCommand() *cobra.Command {
	ns := &cobra.Command{
		Use:   "namespace",
		Short: "Prepare a Temporal namespace for relman",
	}
	ns.AddCommand(&cobra.Command{
		Use:   "prepare",
		Short: "Add relman's search attributes to the namespace (once; running it again changes nothing)",
		Long: `prepare adds the search attributes relman sets (all Keyword) that the
namespace lacks. A manager refuses to start, and relman release to submit,
without them. It needs operator rights on the namespace; where the caller has
none (Temporal Cloud lets no API key add them) it says what does it there.`,
		Example: `  relman namespace prepare
  relman namespace prepare --address temporal:7233 --namespace relman`,
		Args: cobra.NoArgs,
		RunE: a.withClient(func(cmd *cobra.Command, _ []string, c client.Client) error {
			name := a.temporalSettings(config.Temporal{}).Namespace
			if name == "" {
				name = config.DefaultNamespace
			}
			added, err := temporalclient.PrepareNamespace(cmd.Context(), c, name)
			if err != nil {
				return err
			}
			if len(added) == 0 {
				fmt.Fprintf(a.opts.Stdout, "namespace %s is ready: it has relman's search attributes\n", name)
				return nil
			}
			fmt.Fprintf(a.opts.Stdout, "namespace %s is ready: added search attributes %s\n", name, strings.Join(added, ", "))
			return nil
		}),
	})
	return ns
}
