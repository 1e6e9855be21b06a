package temporalclient

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/mocks"
	"google.golang.org/grpc"

	"github.com/relman/relman/workflows"
)

// fakeOperator holds a namespace's custom search attributes; denied
// refuses every call as Temporal Cloud refuses an API key.
type fakeOperator struct {
	operatorservice.OperatorServiceClient
	have   map[string]enumspb.IndexedValueType
	denied bool
	adds   int
}

func (f *fakeOperator) ListSearchAttributes(context.Context, *operatorservice.ListSearchAttributesRequest, ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	if f.denied {
		return nil, serviceerror.NewPermissionDenied("request unauthorized", "")
	}
	m := map[string]enumspb.IndexedValueType{}
	for k, v := range f.have {
		m[k] = v
	}
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: m}, nil
}

func (f *fakeOperator) AddSearchAttributes(_ context.Context, r *operatorservice.AddSearchAttributesRequest, _ ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error) {
	if f.denied {
		return nil, serviceerror.NewPermissionDenied("request unauthorized", "")
	}
	f.adds++
	for k, v := range r.GetSearchAttributes() {
		if _, ok := f.have[k]; ok {
			return nil, serviceerror.NewAlreadyExists(k)
		}
		f.have[k] = v
	}
	return &operatorservice.AddSearchAttributesResponse{}, nil
}

func clientWith(t *testing.T, op *fakeOperator) *mocks.Client {
	c := mocks.NewClient(t)
	c.On("OperatorService").Return(op)
	return c
}

func TestPrepareNamespaceAddsOnce(t *testing.T) {
	op := &fakeOperator{have: map[string]enumspb.IndexedValueType{workflows.SAProject: enumspb.INDEXED_VALUE_TYPE_KEYWORD}}
	c := clientWith(t, op)
	ctx := context.Background()
	_, err := CheckSearchAttributes(ctx, c, "default")
	var missing *MissingSearchAttributesError
	require.ErrorAs(t, err, &missing)
	assert.Contains(t, err.Error(), "relman namespace prepare --namespace default")

	added, err := PrepareNamespace(ctx, c, "default")
	require.NoError(t, err)
	assert.Equal(t, []string{workflows.SAEnv, workflows.SAStatus, workflows.SARequester, workflows.SAManager}, added)
	added, err = PrepareNamespace(ctx, c, "default")
	require.NoError(t, err)
	assert.Empty(t, added, "a prepared namespace is left as it is")
	assert.Equal(t, 1, op.adds)
	ok, err := CheckSearchAttributes(ctx, c, "default")
	assert.True(t, ok)
	assert.NoError(t, err)
}

func TestPrepareNamespaceWithoutRights(t *testing.T) {
	c := clientWith(t, &fakeOperator{denied: true})
	_, err := PrepareNamespace(context.Background(), c, "relman.acct")
	var nr *NoRightsError
	require.ErrorAs(t, err, &nr)
	var denied *serviceerror.PermissionDenied
	assert.True(t, errors.As(err, &denied))
	assert.Contains(t, err.Error(), "tcld namespace search-attributes add --namespace relman.acct --search-attribute RelmanProject=Keyword")
	assert.Contains(t, err.Error(), "--search-attribute RelmanRequester=Keyword")
}

func TestPrepareNamespaceWrongType(t *testing.T) {
	op := &fakeOperator{have: map[string]enumspb.IndexedValueType{workflows.SAEnv: enumspb.INDEXED_VALUE_TYPE_TEXT}}
	_, err := PrepareNamespace(context.Background(), clientWith(t, op), "default")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "RelmanEnv")
	assert.Equal(t, 0, op.adds)
}
