package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/workflows"
)

// Notify POSTs a release's notification as JSON to one webhook. Anything
// but a 2xx answer is an error, retried by the workflow's policy.
func (c *Coordinator) Notify(ctx context.Context, in workflows.NotifyInput) error {
	body, err := json.Marshal(in.Notification)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("notification: "+err.Error(), "BadNotification", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook %s: %v", in.URL, err), "BadWebhook", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relman")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", in.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", in.URL, resp.Status)
	}
	if c.Log != nil {
		c.Log.Info("webhook notified", "url", in.URL, "transaction", in.Notification.Transaction, "status", in.Notification.Status)
	}
	return nil
}
