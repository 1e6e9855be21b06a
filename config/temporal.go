package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.temporal.io/sdk/contrib/envconfig"
)

// Environment variables read by ApplyEnv, named as the Temporal CLI names
// them so one shell setup serves both tools.
const (
	EnvAddress       = "TEMPORAL_ADDRESS"
	EnvNamespace     = "TEMPORAL_NAMESPACE"
	EnvAPIKey        = "TEMPORAL_API_KEY"
	EnvTLS           = "TEMPORAL_TLS"
	EnvTLSCert       = "TEMPORAL_TLS_CERT"
	EnvTLSKey        = "TEMPORAL_TLS_KEY"
	EnvTLSCA         = "TEMPORAL_TLS_CA"
	EnvTLSServerName = "TEMPORAL_TLS_SERVER_NAME"
	// EnvEncryptionKeyFile is relman's own: the payload encryption keys.
	EnvEncryptionKeyFile = "RELMAN_ENCRYPTION_KEY_FILE"
)

// ApplyEnv overrides the file's values with the environment's; pass
// os.LookupEnv. An empty variable counts as unset, as `VAR= relman ...` is
// how shells clear one. Paths from the environment are left as given: they
// are relative to the working directory, not to the config file.
//
// TEMPORAL_TLS is read like strconv.ParseBool; any other non-empty value
// turns TLS on, because failing to connect is safer than silently sending
// credentials in the clear.
func (t *Temporal) ApplyEnv(lookup func(string) (string, bool)) {
	get := func(key string, dst *string) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	get(EnvAddress, &t.Address)
	get(EnvNamespace, &t.Namespace)
	get(EnvAPIKey, &t.APIKey)
	get(EnvTLSCert, &t.TLSCertPath)
	get(EnvTLSKey, &t.TLSKeyPath)
	get(EnvTLSCA, &t.TLSCACertPath)
	get(EnvTLSServerName, &t.TLSServerName)
	get(EnvEncryptionKeyFile, &t.EncryptionKeyFile)
	if v, ok := lookup(EnvTLS); ok && v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		t.TLS = b || err != nil
	}
}

// TLSEnabled applies the Temporal CLI's rule: TLS is on when asked for, or
// when any TLS option or an API key is set, since those mean nothing over
// plaintext.
func (t *Temporal) TLSEnabled() bool {
	return t.TLS || t.APIKey != "" || t.TLSCertPath != "" || t.TLSKeyPath != "" ||
		t.TLSCACertPath != "" || t.TLSServerName != ""
}

// EnvConfigFile and EnvProfile choose the Temporal CLI's client config
// profile (a TOML file, read by the SDK's envconfig package): the file,
// by default temporalio/temporal.toml in the user's config directory, and
// the profile in it, by default "default".
const (
	EnvConfigFile = "TEMPORAL_CONFIG_FILE"
	EnvProfile    = "TEMPORAL_PROFILE"
)

// ApplyProfile fills what t leaves empty from the Temporal CLI's client
// config profile, so a machine set up for the temporal CLI serves relman
// too; t's own values (flags, environment, relman's file) always win. A
// missing file is no error; a profile named by TEMPORAL_PROFILE that the
// file lacks, or a file that does not parse, is. Pass os.LookupEnv.
func (t *Temporal) ApplyProfile(lookup func(string) (string, bool)) error {
	p, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
		DisableEnv: true, // relman's ApplyEnv reads the variables, as the CLI names them
		EnvLookup:  envLookup(lookup),
	})
	if err != nil {
		return fmt.Errorf("temporal client config profile: %w", err)
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&t.Address, p.Address)
	fill(&t.Namespace, p.Namespace)
	fill(&t.APIKey, p.APIKey)
	if tls := p.TLS; tls != nil && !tls.Disabled {
		if len(tls.ClientCertData)+len(tls.ClientKeyData)+len(tls.ServerCACertData) > 0 {
			return errors.New("temporal client config profile: relman reads TLS certificates from files; give paths, not data")
		}
		t.TLS = true
		fill(&t.TLSCertPath, tls.ClientCertPath)
		fill(&t.TLSKeyPath, tls.ClientKeyPath)
		fill(&t.TLSCACertPath, tls.ServerCACertPath)
		fill(&t.TLSServerName, tls.ServerName)
	}
	return nil
}

// envLookup adapts a lookup function to envconfig's interface; envconfig
// lists the environment only to apply variables, which relman turns off.
type envLookup func(string) (string, bool)

func (l envLookup) LookupEnv(k string) (string, bool) { return l(k) }
func (l envLookup) Environ() []string                 { return nil }
