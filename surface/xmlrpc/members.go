package xmlrpc

import (
	"slices"
	"strconv"
	"strings"
)

// refuseUnknown refuses a struct param (what: request_data, filter) that
// holds keys not in accepted, naming them, sorted, and the keys accepted
// (by method, when one is named).
func refuseUnknown(what, method string, m map[string]any, accepted []string) error {
	var unknown []string
	for k := range m {
		if !slices.Contains(accepted, k) {
			unknown = append(unknown, strconv.Quote(clip(k)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	by := "accepted keys"
	if method != "" {
		by = method + " accepts"
	}
	return Faultf(CodeBadRequest, "%s has unknown key(s) %s; %s: %s", what, strings.Join(unknown, ", "), by, strings.Join(accepted, ", "))
}

// stringMember is member k of a struct param (what: request_data, filter):
// a string of at most 1024 characters, "" when it is absent or nil.
func stringMember(what string, m map[string]any, k string) (string, error) {
	v := m[k]
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", Faultf(CodeBadRequest, "%s %s must be a string, not %s", what, k, TypeName(v))
	}
	if len(s) > 1024 {
		return "", Faultf(CodeBadRequest, "%s %s is longer than 1024 characters", what, k)
	}
	return s, nil
}
