package config

import (
	"strconv"
	"strings"
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
