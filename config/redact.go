package config

import "net/url"

// RedactURL is a URL without the parts that may hold a secret: it keeps the
// scheme, host and port, and drops the user, password, path, query and
// fragment (a webhook's token is often its path: /hooks/T0/B0/XXXX). For
// logs, errors and plans.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a webhook URL)"
	}
	out := u.Scheme + "://" + u.Host
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		out += "/…"
	}
	return out
}
