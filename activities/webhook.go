package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// Notify POSTs a release's notification as JSON to one webhook: the one
// its reference names in the manager's config, or, for releases planned
// before references, the URL it carries. Anything but a 2xx answer is an
// error, retried by the workflow's policy. Logs and errors name the
// webhook by its environment, index and redacted URL: they reach the
// history and the log, and a webhook URL often holds a secret.
func (c *Coordinator) Notify(ctx context.Context, in workflows.NotifyInput) error {
	target, name := in.URL, config.RedactURL(in.URL)
	if in.Webhook != nil {
		if c.Config == nil {
			return temporal.NewNonRetryableApplicationError("this manager has no config to look webhooks up in", "BadWebhook", nil)
		}
		u, ok := c.Config.Webhook(in.Webhook.Env, in.Webhook.Index)
		if !ok {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook %d of environment %s is no longer in the manager's config", in.Webhook.Index, in.Webhook.Env), "BadWebhook", nil)
		}
		target, name = u, fmt.Sprintf("%s[%d] %s", in.Webhook.Env, in.Webhook.Index, config.RedactURL(u))
	}
	body, err := json.Marshal(in.Notification)
	if err != nil {
		return temporal.NewNonRetryableApplicationError("notification: "+err.Error(), "BadNotification", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("webhook %s: the URL does not parse", name), "BadWebhook", nil)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relman")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: config.DefaultWebhookHTTPTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// net/http's errors quote the whole URL: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", name, resp.Status)
	}
	if c.Log != nil {
		c.Log.Info("webhook notified", "webhook", name, "transaction", in.Notification.Transaction, "status", in.Notification.Status)
	}
	return nil
}
