package activities_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/internal/record"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// detailReader is the TransactionReader seam: one transaction's detail.
type detailReader struct{ d *workflows.Detail }

func (r detailReader) Get(_ context.Context, txid string) (*workflows.Detail, error) {
	if r.d == nil || r.d.Transaction != txid {
		return nil, transaction.ErrNotFound
	}
	return r.d, nil
}

// TestEarlierBuildChecksTheStore: installing the build of an earlier
// transaction goes ahead while its artifacts are stored, and is rejected,
// naming what is missing and how to build it again, once they are not.
func TestEarlierBuildChecksTheStore(t *testing.T) {
	store, dir := fileStore(t)
	ctx := context.Background()
	web := filepath.Join(t.TempDir(), "web.tar.gz")
	if err := os.WriteFile(web, []byte("web bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := store.PutFile(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	gone := strings.Repeat("b", 64)
	d := &workflows.Detail{
		Transaction: "tx-old", Status: workflows.StatusInstallCompleted, Commit: "0123456789abcdef",
		Request:   workflows.Request{Project: "template", Action: workflows.ActionInstall, Env: "test"},
		Artifacts: map[string]workflows.ArtifactRef{"web": {Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size}},
	}
	m := &activities.Manager{Config: testManagerConfig(), Transactions: detailReader{d}, Store: store}
	req := workflows.Request{Project: "template", Action: workflows.ActionInstall, Env: "prod", From: "tx-old"}
	res, err := m.EarlierBuild(ctx, req)
	if err != nil {
		t.Fatalf("stored build: %v", err)
	}
	if res.Artifacts["web"].SHA256 != ref.SHA256 || res.Commit != d.Commit {
		t.Fatalf("build %+v, want the earlier one", res)
	}

	d.Artifacts["docs"] = workflows.ArtifactRef{Key: "sha256/" + gone, SHA256: gone, Size: 3}
	_, err = m.EarlierBuild(ctx, req)
	app := appError(t, err, workflows.ErrRejected, true)
	mustContain(t, app.Message(), "the build of transaction tx-old is no longer in the artifact store file://"+dir,
		"docs (sha256 "+gone+") missing", "relman release template --revision 0123456789abcdef")
	if strings.Contains(app.Message(), "web (") {
		t.Errorf("a stored artifact is named missing: %s", app.Message())
	}
}

func newKeeper(t *testing.T) (*record.Keeper, artifact.Store) {
	t.Helper()
	store, _ := fileStore(t)
	key, err := record.LoadKey(filepath.Join(t.TempDir(), "records.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return record.New(store, key, "default"), store
}

func TestReadRecords(t *testing.T) {
	ctx := context.Background()
	t.Run("no records kept", func(t *testing.T) {
		_, err := (&activities.Records{}).ReadRecords(ctx, workflows.RecordsInput{Transaction: "tx-1"})
		app := appError(t, err, workflows.ErrNoRecords, true)
		mustContain(t, app.Message(), "keeps no closed-transaction records (no artifacts in its config)")
	})
	k, _ := newKeeper(t)
	a := &activities.Records{Keeper: k}
	t.Run("no record", func(t *testing.T) {
		_, err := a.ReadRecords(ctx, workflows.RecordsInput{Transaction: "tx-none"})
		appError(t, err, workflows.ErrNoRecord, true)
	})
	started := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := transaction.Record{Transaction: "tx-1", Workflow: workflows.ReleaseWorkflowName, Detail: workflows.Detail{
		Transaction: "tx-1", Status: workflows.StatusInstallCompleted, Started: started, Ended: started.Add(time.Second),
		Request: workflows.Request{Project: "template", Action: workflows.ActionInstall, Env: "test", Requester: "alice"},
	}, Timeline: []transaction.Step{{Time: started, Event: "requested"}}}
	if _, err := k.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	t.Run("found", func(t *testing.T) {
		res, err := a.ReadRecords(ctx, workflows.RecordsInput{Transaction: "tx-1"})
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(res.Record))
		if err != nil {
			t.Fatal(err)
		}
		var got transaction.Record
		if err := json.NewDecoder(zr).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.Detail.Status != workflows.StatusInstallCompleted || got.Detail.Request.Requester != "alice" || len(got.Timeline) != 1 {
			t.Fatalf("record %+v", got)
		}
	})
	t.Run("listed", func(t *testing.T) {
		res, err := a.ReadRecords(ctx, workflows.RecordsInput{List: &workflows.RecordsFilter{Project: "template", Limit: 5}})
		if err != nil {
			t.Fatal(err)
		}
		var rows []transaction.Listed
		if err := json.Unmarshal(res.Rows, &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Transaction != "tx-1" || rows[0].From != transaction.FromRecord {
			t.Fatalf("rows %+v", rows)
		}
	})
}

// TestReadRecordsUnverified: a record changed in the store is answered as
// not verifying, never retried and never handed out.
func TestReadRecordsUnverified(t *testing.T) {
	ctx := context.Background()
	k, store := newKeeper(t)
	started := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := k.Write(ctx, transaction.Record{Transaction: "tx-1", Workflow: workflows.ReleaseWorkflowName, Detail: workflows.Detail{
		Transaction: "tx-1", Status: workflows.StatusInstallFailed, Started: started, Ended: started,
	}}); err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	key := artifact.RecordKey("default", "tx-1")
	if _, err := store.GetIndex(ctx, key, &idx); err != nil {
		t.Fatal(err)
	}
	idx["body"].(map[string]any)["row"].(map[string]any)["status"] = "INSTALL_COMPLETED"
	if err := store.PutIndex(ctx, key, idx); err != nil {
		t.Fatal(err)
	}
	res, err := (&activities.Records{Keeper: k}).ReadRecords(ctx, workflows.RecordsInput{Transaction: "tx-1"})
	app := appError(t, err, workflows.ErrRecordUnverified, true)
	mustContain(t, app.Message(), "record of tx-1 does not verify", "changed after the manager signed it")
	if len(res.Record) != 0 {
		t.Error("a record that does not verify was handed out")
	}
}
