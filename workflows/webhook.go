package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
)

// NotifyInput is the Notify activity's argument: one webhook, one payload.
// Webhook names the webhook in the manager's config; URL is the webhook
// itself, as releases planned before webhook references carried it.
type NotifyInput struct {
	URL          string       `json:"url,omitempty"`
	Webhook      *WebhookRef  `json:"webhook,omitempty"`
	Notification Notification `json:"notification"`
}

// WebhookRef names one of an environment's webhooks without its URL: a
// webhook URL often holds a secret (a token in its path or query), and
// what a workflow carries stays in its history for good. The Notify
// activity looks the URL up in the manager's config.
type WebhookRef struct {
	Env   string `json:"env"`
	Index int    `json:"index"`
	// Name is the URL without its secret parts (config.RedactURL), for
	// people reading the plan.
	Name string `json:"name"`
}

// Notification is the JSON body POSTed to an environment's webhooks.
type Notification struct {
	Transaction string       `json:"transaction"`
	Project     string       `json:"project"`
	Env         string       `json:"env,omitempty"`
	Action      Action       `json:"action"`
	Status      Status       `json:"status"`
	Reason      string       `json:"reason,omitempty"`
	Requester   string       `json:"requester,omitempty"`
	Commit      string       `json:"commit,omitempty"`
	Hosts       HostsSummary `json:"hosts"`
	Time        time.Time    `json:"time"`
}

// HostsSummary counts a release's (host, target) installs by state.
type HostsSummary struct {
	Total      int `json:"total"`
	Installed  int `json:"installed"`
	Failed     int `json:"failed"`
	Skipped    int `json:"skipped"`
	Pending    int `json:"pending"`
	RolledBack int `json:"rolled_back"`
}

// countInstalls counts installs by state.
func countInstalls(installs []InstallRecord) HostsSummary {
	var h HostsSummary
	for _, in := range installs {
		h.Total++
		switch in.State {
		case InstallInstalled:
			h.Installed++
		case InstallFailedS:
			h.Failed++
		case InstallSkipped, InstallCancelled:
			h.Skipped++
		default:
			h.Pending++
		}
		if in.RolledBack {
			h.RolledBack++
		}
	}
	return h
}

// notification is the webhook payload of the release as it stands.
func (r *release) notification(ctx workflow.Context) Notification {
	n := Notification{
		Transaction: r.d.Transaction,
		Project:     r.d.Request.Project,
		Env:         r.d.Request.Env,
		Action:      r.d.Request.Action,
		Status:      r.d.Status,
		Reason:      r.d.Reason,
		Requester:   r.d.Request.Requester,
		Commit:      r.d.Commit,
		Time:        workflow.Now(ctx),
	}
	if n.Reason == "" {
		n.Reason = r.d.Waiting
	}
	n.Hosts = countInstalls(r.d.Installs)
	return n
}

// startNotify posts the release's state to each webhook through the Notify
// activity, retried with backoff. A webhook that stays down never fails
// the release.
func (r *release) startNotify(ctx workflow.Context) []workflow.Future {
	if len(r.webhooks) == 0 && len(r.hooks) == 0 {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: config.DefaultWebhookTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    config.DefaultWebhookRetryInterval,
			BackoffCoefficient: 2,
			MaximumInterval:    config.DefaultWebhookRetryMax,
			MaximumAttempts:    config.DefaultWebhookAttempts,
		},
	})
	n := r.notification(ctx)
	var fs []workflow.Future
	// A release planned since webhook references carries those; one
	// planned before carries the URLs its plan recorded.
	for _, h := range r.hooks {
		fs = append(fs, workflow.ExecuteActivity(actx, NotifyActivity, NotifyInput{Webhook: &h, Notification: n}))
	}
	for _, u := range r.webhooks {
		fs = append(fs, workflow.ExecuteActivity(actx, NotifyActivity, NotifyInput{URL: u, Notification: n}))
	}
	return fs
}

// notifyAsync notifies without waiting: the release goes on waiting for
// its approval meanwhile.
func (r *release) notifyAsync(ctx workflow.Context) { r.startNotify(ctx) }

// notifyFinal notifies a final status and waits, so the workflow does not
// close under its own notifications.
func (r *release) notifyFinal(ctx workflow.Context) {
	for _, f := range r.startNotify(ctx) {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("webhook not notified", "error", err)
		}
	}
}
