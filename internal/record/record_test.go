package record_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/internal/record"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func sample(txid, project, status string, started time.Time) transaction.Record {
	d := workflows.Detail{
		Transaction: txid,
		Request:     workflows.Request{Project: project, Action: workflows.ActionInstall, Env: "test", Requester: "alice", Source: workflows.Selector{Branch: "main"}},
		Status:      workflows.Status(status),
		Builder:     "builder-1",
		Commit:      "0123456789abcdef0123456789abcdef01234567",
		Artifacts:   map[string]workflows.ArtifactRef{"web": {Key: "sha256/" + strings.Repeat("a", 64), SHA256: strings.Repeat("a", 64), Size: 10, Format: "tar.gz"}},
		Installs:    []workflows.InstallRecord{{Host: "host-a", Target: "web", State: workflows.InstallInstalled, Attempts: 1, Started: started, Ended: started.Add(time.Second)}},
		Events:      []workflows.Event{{Time: started, Status: workflows.StatusStarted, Detail: "install of " + project + " requested by alice"}},
		Started:     started,
		Ended:       started.Add(2 * time.Second),
	}
	return transaction.Record{
		Transaction: txid,
		Workflow:    workflows.ReleaseWorkflowName,
		Detail:      d,
		Timeline: []transaction.Step{
			{Time: started, Event: "requested", Queue: "relman-manager", Detail: "install of " + project + " from branch main into test by alice"},
			{Time: started.Add(time.Second), Event: "completed", Activity: "Install", Queue: "relman-host-host-a", Worker: "host-a", Attempt: 1, Took: time.Second},
			{Time: started.Add(2 * time.Second), Event: "ended"},
		},
	}
}

type fixture struct {
	dir    string
	store  artifact.Store
	keeper *record.Keeper
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := artifact.OpenStore(context.Background(), "file://"+filepath.Join(dir, "store"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	key, err := record.LoadKey(filepath.Join(dir, "records.key"), nil)
	require.NoError(t, err)
	return fixture{dir: dir, store: s, keeper: record.New(s, key, "default")}
}

func (f fixture) path(key string) string {
	return filepath.Join(f.dir, "store", filepath.FromSlash(key))
}

func TestWriteThenRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rec := sample("tx-1", "shop", "INSTALL_COMPLETED", t0)
	w, err := f.keeper.Write(ctx, rec)
	require.NoError(t, err)
	assert.Equal(t, "transactions/default/tx-1.json", w.Key)
	assert.False(t, w.Existed)
	ok, err := f.store.Has(ctx, w.Record)
	require.NoError(t, err)
	assert.True(t, ok, "the record is content-addressed in the store")

	got, err := f.keeper.Record(ctx, "tx-1")
	require.NoError(t, err)
	assert.Equal(t, rec.Detail.Status, got.Detail.Status)
	assert.Equal(t, rec.Detail.Request, got.Detail.Request)
	assert.Equal(t, rec.Detail.Commit, got.Detail.Commit)
	assert.Equal(t, rec.Detail.Artifacts, got.Detail.Artifacts)
	assert.Equal(t, rec.Detail.Installs, got.Detail.Installs)
	assert.Equal(t, rec.Timeline, got.Timeline)
	assert.Equal(t, workflows.ReleaseWorkflowName, got.Workflow)
	assert.False(t, got.Recorded.IsZero())

	// Written once: a second write (a retried activity) keeps the first.
	again := rec
	again.Detail.Reason = "something else"
	w2, err := f.keeper.Write(ctx, again)
	require.NoError(t, err)
	assert.True(t, w2.Existed)
	assert.Equal(t, w.Record, w2.Record)
	got, err = f.keeper.Record(ctx, "tx-1")
	require.NoError(t, err)
	assert.Empty(t, got.Detail.Reason)

	// Another manager on the queue with the same key file reads it.
	key, err := record.LoadKey(filepath.Join(f.dir, "records.key"), nil)
	require.NoError(t, err)
	_, err = record.New(f.store, key, "default").Record(ctx, "tx-1")
	require.NoError(t, err)

	_, err = f.keeper.Record(ctx, "tx-2")
	assert.ErrorIs(t, err, transaction.ErrNoRecord)
}

// TestTamperedRecordsDoNotVerify: whatever someone who can write to the
// store (but lacks the manager's key) changes, the record is reported as
// not verifying, never shown.
func TestTamperedRecordsDoNotVerify(t *testing.T) {
	for name, tc := range map[string]struct {
		tamper func(t *testing.T, f fixture, w record.Written)
		want   string
	}{
		"record content changed": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				p := f.path(w.Record.Key)
				b, err := os.ReadFile(p)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(b), "INSTALL_COMPLETED", "INSTALL_COMPLETEX", 1)), 0o644))
			},
			want: "its content was changed after the manager wrote it",
		},
		"record and index replaced together": {
			// A forged record stored properly, and the index pointed at it.
			tamper: func(t *testing.T, f fixture, w record.Written) {
				forged := sample("tx-1", "shop", "INSTALL_COMPLETED", t0)
				forged.Detail.Commit = strings.Repeat("f", 40)
				b, err := json.Marshal(forged)
				require.NoError(t, err)
				ref, err := f.store.Put(context.Background(), strings.NewReader(string(b)))
				require.NoError(t, err)
				editIndex(t, f, "tx-1", func(body map[string]any) { body["record"] = ref })
			},
			want: "its index was changed after the manager signed it",
		},
		"index row changed": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				editIndex(t, f, "tx-1", func(body map[string]any) { body["row"].(map[string]any)["status"] = "INSTALL_FAILED" })
			},
			want: "its index was changed after the manager signed it",
		},
		"another transaction's index copied": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				_, err := f.keeper.Write(context.Background(), sample("tx-other", "shop", "INSTALL_FAILED", t0))
				require.NoError(t, err)
				b, err := os.ReadFile(f.path("transactions/default/tx-other.json"))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(f.path("transactions/default/tx-1.json"), b, 0o644))
			},
			want: "its index was signed for transaction tx-other",
		},
		"signed with another key": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				require.NoError(t, os.Remove(f.path("transactions/default/tx-1.json")))
				key, err := record.LoadKey(filepath.Join(t.TempDir(), "other.key"), nil)
				require.NoError(t, err)
				_, err = record.New(f.store, key, "default").Write(context.Background(), sample("tx-1", "shop", "INSTALL_COMPLETED", t0))
				require.NoError(t, err)
			},
			want: "managers on one queue need the same records_key_file",
		},
		"record deleted": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				require.NoError(t, os.Remove(f.path(w.Record.Key)))
			},
			want: "which the store does not hold",
		},
		"index not JSON": {
			tamper: func(t *testing.T, f fixture, w record.Written) {
				require.NoError(t, os.WriteFile(f.path("transactions/default/tx-1.json"), []byte("{not json"), 0o644))
			},
			want: "is not an index document",
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			w, err := f.keeper.Write(ctx, sample("tx-1", "shop", "INSTALL_COMPLETED", t0))
			require.NoError(t, err)
			tc.tamper(t, f, w)
			rec, err := f.keeper.Record(ctx, "tx-1")
			assert.Nil(t, rec, "a record that does not verify is never returned")
			require.ErrorIs(t, err, transaction.ErrUnverified)
			assert.Contains(t, err.Error(), "the closed-transaction record of tx-1 does not verify")
			assert.Contains(t, err.Error(), tc.want)

			// A list leaves out a record whose index does not verify, and
			// names it. It reads the signed indexes only (one small read per
			// row): a row whose index verifies is what the manager signed,
			// and the record's own bytes are checked when it is read.
			// Another manager's record (signed with its own key) is left
			// out without a word: it is not this manager's to vouch for.
			rows, bad, err := f.keeper.List(ctx, transaction.Filter{})
			require.NoError(t, err)
			if !strings.HasPrefix(name, "record ") || strings.Contains(name, "index") {
				if name == "signed with another key" {
					assert.NotContains(t, bad, "tx-1")
				} else {
					assert.Contains(t, bad, "tx-1")
				}
				for _, r := range rows {
					assert.NotEqual(t, "tx-1", r.Transaction)
				}
			}

			// Nor is it written over: the manager refuses to replace it.
			_, err = f.keeper.Write(ctx, sample("tx-1", "shop", "INSTALL_COMPLETED", t0))
			assert.ErrorIs(t, err, record.ErrIndexTaken)
		})
	}
}

func editIndex(t *testing.T, f fixture, txid string, edit func(map[string]any)) {
	t.Helper()
	p := f.path("transactions/default/" + txid + ".json")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	var idx map[string]any
	require.NoError(t, json.Unmarshal(b, &idx))
	body := idx["body"].(map[string]any)
	edit(body)
	b, err = json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, b, 0o644))
}

// TestNothingSecretInRecords: a password in a URL and a relman token, even
// where a failing step printed them, never reach the store.
func TestNothingSecretInRecords(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rec := sample("tx-1", "shop", "BUILD_FAILED", t0)
	token := "relman_" + strings.Repeat("Q", 43)
	rec.Detail.Request.Source = workflows.Selector{URL: "https://deploy:hunter2@git.example.com/shop.git"}
	rec.Detail.Reason = "git clone https://deploy:hunter2@git.example.com/shop.git failed; token " + token
	rec.Timeline = append(rec.Timeline, transaction.Step{Event: "failed", Detail: "fatal: could not read from https://deploy:hunter2@git.example.com"})
	w, err := f.keeper.Write(ctx, rec)
	require.NoError(t, err)
	var stored []byte
	require.NoError(t, filepath.WalkDir(filepath.Join(f.dir, "store"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		stored = append(stored, b...)
		return err
	}))
	assert.NotContains(t, string(stored), "hunter2")
	assert.NotContains(t, string(stored), token)
	got, err := f.keeper.Record(ctx, "tx-1")
	require.NoError(t, err, "a scrubbed record verifies: %v", w)
	assert.Equal(t, "https://deploy:xxxxx@git.example.com/shop.git", got.Detail.Request.Source.URL)
	assert.Contains(t, got.Detail.Reason, "token relman_xxxxx")
}

func TestList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Written in this order, a little apart, so the store's modification
	// times order them.
	for i, r := range []transaction.Record{
		sample("tx-1", "shop", "INSTALL_COMPLETED", t0),
		sample("tx-2", "blog", "BUILD_FAILED", t0.Add(time.Minute)),
		sample("tx-3", "shop", "INSTALL_FAILED", t0.Add(2*time.Minute)),
	} {
		_, err := f.keeper.Write(ctx, r)
		require.NoError(t, err)
		mt := t0.Add(time.Duration(i) * time.Hour)
		require.NoError(t, os.Chtimes(f.path(artifact.RecordKey("default", r.Transaction)), mt, mt))
	}
	// Records of another namespace, and of another manager in this one,
	// in the same store: neither is listed, neither is flagged.
	key, err := record.LoadKey(filepath.Join(t.TempDir(), "other.key"), nil)
	require.NoError(t, err)
	_, err = record.New(f.store, key, "default").Write(ctx, sample("tx-theirs", "shop", "INSTALL_COMPLETED", t0))
	require.NoError(t, err)
	own, err := record.LoadKey(filepath.Join(f.dir, "records.key"), nil)
	require.NoError(t, err)
	_, err = record.New(f.store, own, "staging").Write(ctx, sample("tx-1", "shop", "BUILD_FAILED", t0))
	require.NoError(t, err)
	got, err := record.New(f.store, own, "staging").Record(ctx, "tx-1")
	require.NoError(t, err)
	assert.Equal(t, workflows.Status("BUILD_FAILED"), got.Detail.Status, "the same id in another namespace is another transaction")
	for name, tc := range map[string]struct {
		f    transaction.Filter
		want []string
	}{
		"all, newest first": {transaction.Filter{}, []string{"tx-3", "tx-2", "tx-1"}},
		"project":           {transaction.Filter{Project: "shop"}, []string{"tx-3", "tx-1"}},
		"status any case":   {transaction.Filter{Status: "build_failed"}, []string{"tx-2"}},
		"requester":         {transaction.Filter{Requester: "bob"}, nil},
		"limit":             {transaction.Filter{Limit: 1}, []string{"tx-3"}},
	} {
		t.Run(name, func(t *testing.T) {
			rows, bad, err := f.keeper.List(ctx, tc.f)
			require.NoError(t, err)
			assert.Empty(t, bad)
			var ids []string
			for _, r := range rows {
				ids = append(ids, r.Transaction)
				assert.Equal(t, transaction.FromRecord, r.From)
			}
			assert.Equal(t, tc.want, ids)
		})
	}
	rows, _, err := f.keeper.List(ctx, transaction.Filter{Project: "blog"})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, transaction.Listed{Transaction: "tx-2", Project: "blog", Env: "test", Status: "BUILD_FAILED", Requester: "alice",
		Started: t0.Add(time.Minute), Closed: t0.Add(time.Minute + 2*time.Second), From: transaction.FromRecord}, rows[0])
}

func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "records.key")
	k1, err := record.LoadKey(p, nil)
	require.NoError(t, err)
	fi, err := os.Stat(p)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the key file is its owner's alone")
	k2, err := record.LoadKey(p, nil)
	require.NoError(t, err)
	assert.Equal(t, record.KeyID(k1), record.KeyID(k2), "the same file is the same key")
	require.NoError(t, os.WriteFile(p, []byte("short"), 0o600))
	_, err = record.LoadKey(p, nil)
	assert.ErrorContains(t, err, "fewer than 32 bytes")
	assert.False(t, errors.Is(err, transaction.ErrUnverified))
}
