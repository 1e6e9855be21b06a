package temporalclient

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	namespacepb "go.temporal.io/api/namespace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Retention is what a namespace keeps of closed workflows: Temporal deletes
// a closed workflow, its history and its visibility record once TTL has
// passed, unless archival keeps a copy.
type Retention struct {
	Namespace string
	TTL       time.Duration
	// HistoryArchival and VisibilityArchival are on when the namespace
	// archives closed workflows before deleting them.
	HistoryArchival    bool
	VisibilityArchival bool
}

// DescribeRetention reads the retention of namespace ns.
func DescribeRetention(ctx context.Context, c client.Client, ns string) (Retention, error) {
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if err != nil {
		return Retention{}, fmt.Errorf("describe namespace %s: %w", ns, err)
	}
	cfg := resp.GetConfig()
	return Retention{
		Namespace:          ns,
		TTL:                cfg.GetWorkflowExecutionRetentionTtl().AsDuration(),
		HistoryArchival:    cfg.GetHistoryArchivalState() == enumspb.ARCHIVAL_STATE_ENABLED,
		VisibilityArchival: cfg.GetVisibilityArchivalState() == enumspb.ARCHIVAL_STATE_ENABLED,
	}, nil
}

// SetRetention sets the retention of namespace ns to ttl through the
// frontend's UpdateNamespace, as `temporal operator namespace update
// --retention` does.
func SetRetention(ctx context.Context, c client.Client, ns string, ttl time.Duration) error {
	_, err := c.WorkflowService().UpdateNamespace(ctx, &workflowservice.UpdateNamespaceRequest{
		Namespace: ns,
		Config:    &namespacepb.NamespaceConfig{WorkflowExecutionRetentionTtl: durationpb.New(ttl)},
	})
	if err != nil {
		return fmt.Errorf("set the retention of namespace %s to %s: %w", ns, FormatRetention(ttl), err)
	}
	return nil
}

// RetentionCommand is the Temporal CLI command that sets the retention of
// namespace ns to ttl; relman's warnings print it so that the fix is one
// copy and paste away.
func RetentionCommand(ns string, ttl time.Duration) string {
	return fmt.Sprintf("temporal operator namespace update --namespace %s --retention %s", ns, FormatRetention(ttl))
}

// FormatRetention writes whole days as the Temporal CLI reads them ("30d"),
// anything else as a Go duration.
func FormatRetention(ttl time.Duration) string {
	const day = 24 * time.Hour
	if ttl > 0 && ttl%day == 0 {
		return fmt.Sprintf("%dd", ttl/day)
	}
	return ttl.String()
}
