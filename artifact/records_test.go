package artifact_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/relman/relman/artifact"
)

// TestRecordIndexWrittenOnce: a record's index document is written once; a
// second write leaves the first, on every backend a manager may use.
func TestRecordIndexWrittenOnce(t *testing.T) {
	for name, url := range map[string]string{"mem": "mem://", "file": "file://" + t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := artifact.OpenStore(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			type doc struct{ N int }
			key := artifact.RecordKey("default", "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10")
			if wrote, err := s.PutIndexOnce(ctx, key, doc{N: 1}); !wrote || err != nil {
				t.Fatalf("first write: wrote=%v err=%v", wrote, err)
			}
			if wrote, err := s.PutIndexOnce(ctx, key, doc{N: 2}); wrote || err != nil {
				t.Fatalf("second write: wrote=%v err=%v, want false, nil", wrote, err)
			}
			var got doc
			if ok, err := s.GetIndex(ctx, key, &got); !ok || err != nil || got.N != 1 {
				t.Fatalf("read back %+v ok=%v err=%v, want the first document", got, ok, err)
			}
		})
	}
}

func TestListIndex(t *testing.T) {
	ctx := context.Background()
	s, err := artifact.OpenStore(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"tx-b", "tx-a", "req:2026.1"} {
		if _, err := s.PutIndexOnce(ctx, artifact.RecordKey("relman.a1b2c", id), map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutIndex(ctx, artifact.IndexKey("web", "c1-cfg"), map[string]int{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListIndex(ctx, artifact.RecordPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range got {
		if e.ModTime.IsZero() || e.Size == 0 {
			t.Errorf("%s: no modification time or size: %+v", e.Key, e)
		}
		keys = append(keys, e.Key)
	}
	want := []string{"transactions/relman.a1b2c/req:2026.1.json", "transactions/relman.a1b2c/tx-a.json", "transactions/relman.a1b2c/tx-b.json"}
	if len(keys) != len(want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Fatalf("keys %v, want %v", keys, want)
		}
	}
	if _, err := s.ListIndex(ctx, "sha256/"); !errors.Is(err, artifact.ErrInvalidRef) {
		t.Errorf("listing artifacts: err %v, want ErrInvalidRef", err)
	}
}

// TestRecordKeysStayInTheirPrefix: an id that could leave transactions/ is
// refused before the store is touched.
func TestRecordKeysStayInTheirPrefix(t *testing.T) {
	ctx := context.Background()
	s, err := artifact.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, bad := range []string{"transactions/default/../x.json", "transactions/../x.json", "transactions/a/b/c.json", "transactions/x.json", "transactions/default/.x.json", "transactions/default/x", "transactions/default/" + strings.Repeat("x", 200) + ".json"} {
		if _, err := s.PutIndexOnce(ctx, bad, 1); !errors.Is(err, artifact.ErrInvalidRef) {
			t.Errorf("PutIndexOnce(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
}
