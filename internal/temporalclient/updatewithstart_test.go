package temporalclient_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"github.com/relman/relman/internal/temporalclient"
)

type state struct{ N int }

func TestUpdateWithStartStartsOnDemandAndDecodesTheAnswer(t *testing.T) {
	c := &mocks.Client{}
	h := &mocks.WorkflowUpdateHandle{}
	e := temporalclient.Entity{ID: "desk-q", Queue: "q", Workflow: "Desk", State: state{N: 1}}
	var op client.WithStartWorkflowOperation
	c.On("NewWithStartWorkflowOperation", mock.Anything, "Desk", state{N: 1}).Return(op).Run(func(a mock.Arguments) {
		o := a.Get(0).(client.StartWorkflowOptions)
		assert.Equal(t, "desk-q", o.ID)
		assert.Equal(t, "q", o.TaskQueue)
		assert.Equal(t, enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, o.WorkflowIDConflictPolicy, "a second start joins the running entity")
		assert.Equal(t, enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, o.WorkflowIDReusePolicy, "a closed entity is followed by a new run")
	})
	c.On("UpdateWithStartWorkflow", mock.Anything, mock.Anything).Return(h, nil).Run(func(a mock.Arguments) {
		o := a.Get(1).(client.UpdateWithStartWorkflowOptions)
		assert.Equal(t, "ask", o.UpdateOptions.UpdateName)
		assert.Equal(t, []any{"question"}, o.UpdateOptions.Args)
		assert.Equal(t, client.WorkflowUpdateStageCompleted, o.UpdateOptions.WaitForStage, "the answer is waited for")
	})
	h.On("Get", mock.Anything, mock.Anything).Return(nil).Run(func(a mock.Arguments) {
		*a.Get(1).(*string) = "answer"
	})
	var out string
	require.NoError(t, temporalclient.UpdateWithStart(context.Background(), c, e, "ask", "question", &out))
	assert.Equal(t, "answer", out)
	c.AssertExpectations(t)
	h.AssertExpectations(t)
}

func TestUpdateWithStartReturnsTheErrorOfEitherStep(t *testing.T) {
	boom := errors.New("boom")
	e := temporalclient.Entity{ID: "x", Queue: "q", Workflow: "W"}

	c := &mocks.Client{}
	c.On("NewWithStartWorkflowOperation", mock.Anything, mock.Anything, mock.Anything).Return(nil)
	c.On("UpdateWithStartWorkflow", mock.Anything, mock.Anything).Return(nil, boom)
	assert.ErrorIs(t, temporalclient.UpdateWithStart(context.Background(), c, e, "u", 1, nil), boom, "a refused start or update")

	c = &mocks.Client{}
	h := &mocks.WorkflowUpdateHandle{}
	c.On("NewWithStartWorkflowOperation", mock.Anything, mock.Anything, mock.Anything).Return(nil)
	c.On("UpdateWithStartWorkflow", mock.Anything, mock.Anything).Return(h, nil)
	h.On("Get", mock.Anything, nil).Return(boom)
	assert.ErrorIs(t, temporalclient.UpdateWithStart(context.Background(), c, e, "u", 1, nil), boom, "an update the workflow rejects")
}
