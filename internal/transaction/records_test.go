package transaction

import (
	"testing"

	"github.com/stretchr/testify/assert"
	commonpb "go.temporal.io/api/common/v1"

	"github.com/relman/relman/workflows"
)

// TestAliasedNamesArchivedSearchAttributes: an archived history's search
// attributes carry the visibility store's field names; the namespace's
// aliases give them relman's names back, and fields it does not name keep
// theirs.
func TestAliasedNamesArchivedSearchAttributes(t *testing.T) {
	status, other := &commonpb.Payload{Data: []byte(`"STARTED"`)}, &commonpb.Payload{Data: []byte(`"x"`)}
	fields := map[string]*commonpb.Payload{"Keyword01": status, "BuildIds": other}
	got := aliased(fields, map[string]string{"Keyword01": workflows.SAStatus, "Keyword02": workflows.SARequester})
	assert.Equal(t, map[string]*commonpb.Payload{workflows.SAStatus: status, "BuildIds": other}, got)
	assert.Equal(t, fields, aliased(fields, nil), "a live history's names stay")
}
