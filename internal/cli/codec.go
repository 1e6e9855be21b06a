package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/relman/relman/internal/codec"
)

func (a *app) codecKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "codec-key ID",
		Short: "Print a new payload encryption key line (id:base64) for an encryption key file",
		Long: `Print a new AES-256 key as a key file line. The first line of the key file
encrypts; every line decrypts, so rotate by putting a new key first and
keeping the old ones until no running transaction needs them.`,
		Example: `  relman codec-key k2026 > conf/payload.keys
  chmod 600 conf/payload.keys`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			line, err := codec.NewKeyLine(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			fmt.Fprintln(a.opts.Stdout, line)
			return nil
		},
	}
}

func (a *app) codecServerCommand() *cobra.Command {
	var (
		port    int
		origins []string
	)
	cmd := &cobra.Command{
		Use:   "codec-server --encryption-key-file F",
		Short: "Serve the payload codec so the Temporal Web UI can show encrypted payloads",
		Long: `Serve /encode and /decode for the Temporal Web UI (Settings, Codec Server
endpoint), on 127.0.0.1. Only the listed UI origins may call it.`,
		Example: `  relman codec-server --encryption-key-file conf/payload.keys --port 8081 --ui-origin http://localhost:8233`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := a.temporalSettings(a.conn)
			if t.EncryptionKeyFile == "" {
				return usageErr("relman codec-server needs --encryption-key-file (or RELMAN_ENCRYPTION_KEY_FILE)")
			}
			c, err := codec.LoadKeys(t.EncryptionKeyFile)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: c.Handler(origins), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(a.opts.Stdout, "codec server on http://%s for %v\n", ln.Addr(), origins)
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 8081, "port on 127.0.0.1")
	cmd.Flags().StringSliceVar(&origins, "ui-origin", []string{"http://localhost:8233"}, "Web UI origins allowed to call it")
	return cmd
}
