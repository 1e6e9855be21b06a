package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/relman/relman/workflows"
)

// MissingSearchAttributesError names the search attributes relman sets that
// the namespace lacks. Without them every transaction's workflow task fails
// on its first upsert and the transaction never leaves STARTED.
type MissingSearchAttributesError struct {
	Namespace string
	Missing   []string
}

func (e *MissingSearchAttributesError) Error() string {
	cmds := make([]string, len(e.Missing))
	for i, sa := range e.Missing {
		cmds[i] = fmt.Sprintf("temporal operator search-attribute create --namespace %s --name %s --type Keyword", e.Namespace, sa)
	}
	return fmt.Sprintf("namespace %s lacks relman's search attributes %s (type Keyword), so no transaction could start; run `relman namespace prepare --namespace %s` once, or create them yourself: %s",
		e.Namespace, strings.Join(e.Missing, ", "), e.Namespace, strings.Join(cmds, "; "))
}

// NoRightsError says the caller may not add search attributes to the
// namespace (Temporal Cloud lets no API key do it) and what does it there.
type NoRightsError struct {
	Namespace string
	Missing   []string
	Err       error
}

func (e *NoRightsError) Error() string {
	flags := make([]string, len(e.Missing))
	for i, sa := range e.Missing {
		flags[i] = fmt.Sprintf("--search-attribute %s=Keyword", sa)
	}
	return fmt.Sprintf("may not add search attributes %s to namespace %s (%v); an operator of the namespace must add them: on Temporal Cloud `tcld namespace search-attributes add --namespace %s %s` or, in the Cloud UI, the namespace's Search Attributes; on a self-hosted cluster `relman namespace prepare` with operator credentials",
		strings.Join(e.Missing, ", "), e.Namespace, e.Err, e.Namespace, strings.Join(flags, " "))
}

func (e *NoRightsError) Unwrap() error { return e.Err }

// PrepareNamespace adds the search attributes relman sets that the
// namespace lacks and returns their names; a prepared namespace is left as
// it is (nil, nil). A search attribute of the right name but another type
// is an error: relman cannot change it. A caller without operator rights
// gets a *NoRightsError.
func PrepareNamespace(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		if isDenied(err) {
			return nil, &NoRightsError{Namespace: namespace, Missing: workflows.SearchAttributes, Err: err}
		}
		return nil, fmt.Errorf("list the search attributes of namespace %s: %w", namespace, err)
	}
	have := map[string]enumspb.IndexedValueType{}
	for k, v := range resp.GetCustomAttributes() {
		have[k] = v
	}
	for k, v := range resp.GetSystemAttributes() {
		have[k] = v
	}
	add := map[string]enumspb.IndexedValueType{}
	var missing []string
	for _, sa := range workflows.SearchAttributes {
		t, ok := have[sa]
		switch {
		case !ok:
			add[sa] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
			missing = append(missing, sa)
		case t != enumspb.INDEXED_VALUE_TYPE_KEYWORD:
			return nil, fmt.Errorf("namespace %s has search attribute %s of type %s, relman needs Keyword; remove it (temporal operator search-attribute remove --namespace %s --name %s) and run this again",
				namespace, sa, t, namespace, sa)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: add})
	var exists *serviceerror.AlreadyExists
	switch {
	case errors.As(err, &exists):
		// Another caller added them meanwhile.
	case isDenied(err):
		return nil, &NoRightsError{Namespace: namespace, Missing: missing, Err: err}
	case err != nil:
		return nil, fmt.Errorf("add search attributes %s to namespace %s: %w", strings.Join(missing, ", "), namespace, err)
	}
	return missing, nil
}

func isDenied(err error) bool {
	var denied *serviceerror.PermissionDenied
	var unimpl *serviceerror.Unimplemented
	return errors.As(err, &denied) || errors.As(err, &unimpl)
}

// CheckSearchAttributes reports a *MissingSearchAttributesError when the
// namespace lacks a search attribute relman sets. A server that does not
// let this client list them (no operator rights) is not an error: the
// check is a courtesy, and ok reports whether it could be made.
func CheckSearchAttributes(ctx context.Context, c client.Client, namespace string) (ok bool, err error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return false, nil
	}
	have := map[string]enumspb.IndexedValueType{}
	for k, v := range resp.GetCustomAttributes() {
		have[k] = v
	}
	for k, v := range resp.GetSystemAttributes() {
		have[k] = v
	}
	var missing []string
	for _, sa := range workflows.SearchAttributes {
		if t, ok := have[sa]; !ok || t != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			missing = append(missing, sa)
		}
	}
	if len(missing) > 0 {
		return true, &MissingSearchAttributesError{Namespace: namespace, Missing: missing}
	}
	return true, nil
}
