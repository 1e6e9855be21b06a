package workers

import (
	"context"
	"fmt"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/record"
	"github.com/relman/relman/internal/temporalclient"
)

// A transaction outlives Temporal's retention only by decision: the
// manager says at start how long its namespace keeps closed transactions,
// warns once when that is shorter than its min_retention (with the command
// that changes it), and says whether its closed-transaction records keep
// them after (internal/record).

// retentionTimeout bounds the look at the namespace: a manager does not
// wait on it to serve.
const retentionTimeout = config.DefaultRetentionTimeout

// checkRetention logs the namespace's retention, and warns once when it is
// below cfg.MinRetention. A namespace the manager may not describe (an API
// key without that permission) is logged and passed over.
func (r *role) checkRetention(ctx context.Context, cfg *config.Manager) {
	ns := cfg.Temporal.Namespace
	ctx, cancel := context.WithTimeout(ctx, retentionTimeout)
	defer cancel()
	rt, err := temporalclient.DescribeRetention(ctx, r.client, ns)
	if err != nil {
		r.log.Info("namespace retention unknown; check it with `temporal operator namespace describe --namespace "+ns+"`", "error", err)
		return
	}
	after := "then Temporal deletes them and they are gone"
	switch {
	case rt.HistoryArchival:
		after = "then Temporal's archival keeps their history"
	case cfg.Artifacts != "":
		after = "then only this manager's closed-transaction records answer for them"
	}
	if rt.TTL >= cfg.MinRetention {
		r.log.Info("namespace retention", "namespace", ns, "retention", temporalclient.FormatRetention(rt.TTL),
			"history_archival", rt.HistoryArchival, "visibility_archival", rt.VisibilityArchival)
		return
	}
	r.log.Warn(fmt.Sprintf("namespace %s keeps closed transactions %s, less than min_retention %s: %s; to keep them longer run: %s",
		ns, temporalclient.FormatRetention(rt.TTL), temporalclient.FormatRetention(cfg.MinRetention), after,
		temporalclient.RetentionCommand(ns, cfg.MinRetention)))
}

// records opens the manager's closed-transaction records: its artifact
// store and its records key. A manager without artifacts keeps none, and
// says so.
func (r *role) records(ctx context.Context, cfg *config.Manager) (*record.Keeper, func(), error) {
	if cfg.Artifacts == "" {
		r.log.Warn("no closed-transaction records (no artifacts in the config): a transaction past the namespace's retention is gone from status, history, list, query_transaction and install --from; set artifacts to keep them")
		return nil, func() {}, nil
	}
	key, err := record.LoadKey(cfg.RecordsKeyFile, r.warn)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; set records_key_file to a file the manager can create or read", err)
	}
	store, err := artifact.OpenStore(ctx, cfg.Artifacts)
	if err != nil {
		return nil, nil, fmt.Errorf("closed-transaction records: %w", err)
	}
	k := record.New(store, key, cfg.Temporal.Namespace)
	r.log.Info("closed-transaction records", "store", store.URL(), "key_id", k.KeyID(), "key_file", cfg.RecordsKeyFile)
	return k, func() { store.Close() }, nil
}
