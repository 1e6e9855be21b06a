// Package temporalclient dials Temporal for every relman role and client,
// from the connection settings the Temporal CLI also understands.
package temporalclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/codec"
	"github.com/relman/relman/internal/secretfile"
)

// Options builds client options from the connection settings. The SDK's
// default logger prints every activity at DEBUG, so a structured logger at
// the configured level always replaces it.
//
// identity names the process in event histories (which worker ran what);
// empty keeps the SDK's pid@host.
func Options(t config.Temporal, logger *slog.Logger, identity string, with ...func(*client.Options)) (client.Options, error) {
	if t.Address == "" {
		// No address from flags, the environment or a config file (a role's
		// file always has one): the temporal CLI's profile may name one.
		if err := t.ApplyProfile(os.LookupEnv); err != nil {
			return client.Options{}, err
		}
	}
	o := client.Options{
		HostPort:  t.Address,
		Namespace: t.Namespace,
		Logger:    tlog.NewStructuredLogger(logger),
		Identity:  identity,
	}
	if o.HostPort == "" {
		o.HostPort = config.DefaultAddress
	}
	if o.Namespace == "" {
		o.Namespace = config.DefaultNamespace
	}
	tc, err := tlsConfig(t, func(msg string) { logger.Warn(msg) })
	if err != nil {
		return o, err
	}
	o.ConnectionOptions.TLS = tc
	if t.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	if t.EncryptionKeyFile != "" {
		c, err := codec.LoadKeys(t.EncryptionKeyFile, func(msg string) { logger.Warn(msg) })
		if err != nil {
			return o, err
		}
		o.DataConverter = c.DataConverter()
	}
	for _, f := range with {
		f(&o)
	}
	return o, nil
}

// Dial connects to Temporal. The error says where it tried to connect, since
// a wrong address is the usual cause.
func Dial(t config.Temporal, logger *slog.Logger, identity string, with ...func(*client.Options)) (client.Client, error) {
	o, err := Options(t, logger, identity, with...)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(o)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w; start one with `relman dev` or set --address / TEMPORAL_ADDRESS", o.HostPort, o.Namespace, err)
	}
	return c, nil
}

// Identity is "name@host:pid": which role instance did the work, as the
// history and the Web UI show it.
func Identity(name string) string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", name, h, os.Getpid())
}

func tlsConfig(t config.Temporal, warn func(string)) (*tls.Config, error) {
	if !t.TLS && t.TLSCertPath == "" && t.TLSCACertPath == "" && t.TLSServerName == "" {
		return nil, nil
	}
	tc := &tls.Config{ServerName: t.TLSServerName, MinVersion: tls.VersionTLS12}
	if t.TLSCertPath != "" || t.TLSKeyPath != "" {
		secretfile.Check(t.TLSKeyPath, warn)
		cert, err := tls.LoadX509KeyPair(t.TLSCertPath, t.TLSKeyPath)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if t.TLSCACertPath != "" {
		pem, err := os.ReadFile(t.TLSCACertPath)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca: no certificate found in %s", t.TLSCACertPath)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
