package cli

import (
	"crypto/ed25519"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
)

func (a *app) managerKeyCommand() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "manager-key --config manager.yaml",
		Short: "Print the manager's order-signing public key, for installers' trust.manager_keys",
		Long: `Print the public half of the key the manager signs install orders with
(orders_key_file), making the key on first use as the manager would.
Installers run only orders signed by a key in their trust.manager_keys.`,
		Example: `  relman manager-key --config conf/manager.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageErr("relman manager-key needs --config manager.yaml")
			}
			cfg, err := config.LoadManager(cfgPath)
			if err != nil {
				return err
			}
			key, err := auth.LoadOrderKey(cfg.OrdersKeyFile, a.warnSecret)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.opts.Stdout, auth.EncodeManagerKey(key.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "the manager's config file")
	return cmd
}
