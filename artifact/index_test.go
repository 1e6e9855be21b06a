package artifact_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relman/relman/artifact"
)

func TestIndexRoundTripAndKeys(t *testing.T) {
	ctx := context.Background()
	s, err := artifact.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := artifact.IndexKey("web", "0123abc-cfg")
	type doc struct{ N int }
	var got doc
	if ok, err := s.GetIndex(ctx, key, &got); ok || err != nil {
		t.Fatalf("empty store: ok=%v err=%v", ok, err)
	}
	if err := s.PutIndex(ctx, key, doc{N: 7}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.GetIndex(ctx, key, &got); !ok || err != nil || got.N != 7 {
		t.Fatalf("read back %+v ok=%v err=%v", got, ok, err)
	}
	for _, bad := range []string{"sha256/abc", "builds/../x.json", "builds/web/x", "builds/Web/x.json", "builds/web/a/b.json", "tmp/x.json"} {
		if err := s.PutIndex(ctx, bad, doc{}); !errors.Is(err, artifact.ErrInvalidRef) {
			t.Errorf("PutIndex(%q) = %v, want ErrInvalidRef", bad, err)
		}
		if _, err := s.GetIndex(ctx, bad, &got); !errors.Is(err, artifact.ErrInvalidRef) {
			t.Errorf("GetIndex(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
}

func TestHas(t *testing.T) {
	ctx := context.Background()
	s, err := artifact.OpenStore(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := s.PutFile(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Has(ctx, ref); !ok || err != nil {
		t.Errorf("Has(stored) = %v, %v", ok, err)
	}
	wrong := ref
	wrong.Size++
	if ok, _ := s.Has(ctx, wrong); ok {
		t.Error("Has with the wrong size = true")
	}
	if _, err := s.Has(ctx, artifact.Ref{Key: "builds/x"}); !errors.Is(err, artifact.ErrInvalidRef) {
		t.Errorf("Has(bad ref) = %v", err)
	}
}
