package temporalclient

import (
	"context"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
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
	return fmt.Sprintf("namespace %s lacks relman's search attributes %s (type Keyword), so no transaction could start; create them once: %s",
		e.Namespace, strings.Join(e.Missing, ", "), strings.Join(cmds, "; "))
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
