package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/codec"
	"github.com/relman/relman/internal/secretfile"
)

func (a *app) codecKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "codec-key ID",
		Short: "Print a new payload encryption key line (id:base64) for an encryption key file",
		Long: `Print a new AES-256 key as a key file line. The first line of the key file
encrypts; every line decrypts, so rotate by putting a new key first and
keeping the old ones until no running transaction needs them. Redirected to
a file, the file is made readable by its owner only (0600).`,
		Example: `  relman codec-key k2026 > conf/payload.keys`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			line, err := codec.NewKeyLine(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			if err := a.protectStdout(); err != nil {
				return err
			}
			fmt.Fprintln(a.opts.Stdout, line)
			return nil
		},
	}
}

// protectStdout makes standard output owner-only when it is a file, before
// a secret is written to it.
func (a *app) protectStdout() error {
	if f, ok := a.opts.Stdout.(*os.File); ok {
		return secretfile.Protect(f)
	}
	return nil
}

// warnSecret tells the user on stderr about a secret file others can read.
func (a *app) warnSecret(msg string) { fmt.Fprintln(a.opts.Stderr, "Warning: "+msg) }

func (a *app) codecServerCommand() *cobra.Command {
	var (
		port      int
		address   string
		tokenFile string
		origins   []string
		tlsCert   string
		tlsKey    string
		insecure  bool
	)
	cmd := &cobra.Command{
		Use:   "codec-server --encryption-key-file F --token-file T",
		Short: "Serve the payload codec so the Temporal Web UI can show encrypted payloads",
		Long: `Serve /encode and /decode for the Temporal Web UI (Settings, Codec Server
endpoint) and the temporal CLI (--codec-endpoint). Every call must carry a
bearer token from --token-file (one token a line): the UI sends it as its
access token, the temporal CLI with --codec-auth 'Bearer TOKEN'. Whoever can
call the codec reads every payload, so calls without the token are refused
(401). Browsers may call it only from the --ui-origin origins. It listens on
127.0.0.1 unless --listen-address says otherwise; beyond this machine it
serves HTTPS (--tls-cert, --tls-key), or plain HTTP only with --insecure,
for when TLS ends in front of it (an ingress, a proxy).`,
		Example: `  relman codec-server --encryption-key-file conf/payload.keys --token-file conf/codec.token --port 8081 --ui-origin http://localhost:8233
  relman codec-server --encryption-key-file /etc/relman/payload.keys --token-file /etc/relman/codec-server/token --listen-address 0.0.0.0 --tls-cert codec.pem --tls-key codec.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := a.temporalSettings(a.conn)
			if t.EncryptionKeyFile == "" {
				return usageErr("relman codec-server needs --encryption-key-file (or RELMAN_ENCRYPTION_KEY_FILE)")
			}
			if tokenFile == "" {
				return usageErr("relman codec-server needs --token-file: a file holding the bearer token callers must send (make one with `openssl rand -hex 32 > codec.token`)")
			}
			if net.ParseIP(address) == nil && address != "localhost" {
				return usageErr("--listen-address %q is not an IP address; use e.g. 127.0.0.1, or 0.0.0.0 for every interface", address)
			}
			c, err := codec.LoadKeys(t.EncryptionKeyFile, a.warnSecret)
			if err != nil {
				return err
			}
			tokens, err := codec.LoadTokens(tokenFile, a.warnSecret)
			if err != nil {
				return err
			}
			if (tlsCert == "") != (tlsKey == "") {
				return usageErr("--tls-cert and --tls-key go together; give both or neither")
			}
			switch {
			case tlsCert != "", config.Loopback(address):
			case insecure:
				fmt.Fprintf(a.opts.Stderr, "Warning: the codec server serves plain HTTP on %s (--insecure); TLS must end in front of it (an ingress, a proxy), or the token and every payload cross the network in clear\n", address)
			default:
				return usageErr("the codec server would serve plain HTTP on %s, where its token and every decoded payload would cross the network in clear; give --tls-cert and --tls-key, or --insecure when TLS ends in front of it (an ingress, a proxy)", address)
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: c.Handler(origins, tokens), ReadHeaderTimeout: config.DefaultCodecReadHeaderTimeout}
			scheme := "http"
			if tlsCert != "" {
				scheme = "https"
			}
			fmt.Fprintf(a.opts.Stdout, "codec server on %s://%s for %v\n", scheme, ln.Addr(), origins)
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), config.DefaultCodecStopTimeout)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			serve := func() error { return srv.Serve(ln) }
			if tlsCert != "" {
				serve = func() error { return srv.ServeTLS(ln, tlsCert, tlsKey) }
			}
			if err := serve(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&port, "port", 8081, "port to listen on")
	cmd.Flags().StringVar(&address, "listen-address", "127.0.0.1", "address to listen on; 0.0.0.0 for every interface (a pod behind a Service)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the bearer token(s) callers must send, one a line (required)")
	cmd.Flags().StringSliceVar(&origins, "ui-origin", []string{"http://localhost:8233"}, "Web UI origins allowed to call it")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "certificate (PEM) to serve HTTPS with; needed beyond loopback unless --insecure")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "the certificate's key (PEM)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "serve plain HTTP beyond loopback: only when TLS ends in front of it")
	return cmd
}
