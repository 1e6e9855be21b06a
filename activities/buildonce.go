package activities

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// Build once: a build of a commit is a function of the commit and the
// project's build config, so the builder keeps an index of each build in the
// artifact store (builds/<project>/<commit>-<config hash>.json) and returns
// it, without running a step, when the same commit is asked for again with
// the same config and every artifact is still stored. `relman release
// --rebuild` skips the lookup.
//
// Whoever can write the store could rewrite an index to point at objects of
// their own, and every host would install them. So each index is signed
// (HMAC-SHA256, over its store key and its content) with a key only the
// builders hold (signing_key_file), and an index that does not verify is
// never reused: the builder logs it and builds again, and its new signed
// index replaces the bad one.

// buildIndex is the document stored for one build.
type buildIndex struct {
	Project     string                           `json:"project"`
	Commit      string                           `json:"commit"`
	Builder     string                           `json:"builder"`
	Transaction string                           `json:"transaction"`
	Built       time.Time                        `json:"built"`
	Artifacts   map[string]workflows.ArtifactRef `json:"artifacts"`
	Steps       []workflows.StepResult           `json:"steps"`
	// MAC signs the record and where it is stored (sign).
	MAC string `json:"mac,omitempty"`
}

// sign is the record's MAC under key: the store key is in it, so a valid
// record copied to another commit's or build config's key does not verify.
func (idx buildIndex) sign(key []byte, storeKey string) string {
	idx.MAC = ""
	b, _ := json.Marshal(idx)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("relman-build-record-v1\n" + storeKey + "\n"))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// verify reports whether the record was signed with key for storeKey.
func (idx buildIndex) verify(key []byte, storeKey string) bool {
	got, err := hex.DecodeString(idx.MAC)
	if err != nil || len(key) == 0 {
		return false
	}
	want, _ := hex.DecodeString(idx.sign(key, storeKey))
	return hmac.Equal(got, want)
}

// buildConfigHash is the sha256 of the parts of a project's build config
// that shape its output, as canonical JSON (struct fields in order, map keys
// sorted by encoding/json). Step timeouts are left out: they change when a
// build is killed, not what it makes. For svn the repository root and the
// selector are in too: a revision number alone does not name one tree.
func buildConfigHash(bb config.BuildBehavior, sel workflows.Selector) string {
	type step struct {
		Name string   `json:"name"`
		Run  []string `json:"run"`
		Dir  string   `json:"dir"`
	}
	doc := struct {
		Steps   []step                   `json:"steps"`
		Outputs map[string]config.Output `json:"outputs"`
		Env     map[string]string        `json:"env"`
		Svn     string                   `json:"svn,omitempty"`
		Where   string                   `json:"where,omitempty"`
	}{Outputs: bb.Outputs, Env: bb.Env}
	for _, s := range bb.Steps {
		doc.Steps = append(doc.Steps, step{Name: s.Name, Run: s.Run, Dir: s.Dir})
	}
	if bb.Source.Svn != "" {
		doc.Svn = bb.Source.Svn
		doc.Where = sel.String()
	} else if sel.URL != "" {
		doc.Where = sel.String()
	}
	b, _ := json.Marshal(doc)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func buildIndexKey(project, commit string, bb config.BuildBehavior, sel workflows.Selector) string {
	return artifact.IndexKey(project, safeName(commit)+"-"+buildConfigHash(bb, sel))
}

// wantedTargets are the named targets a build must produce.
func wantedTargets(in workflows.BuildInput, bb config.BuildBehavior) []string {
	if len(in.Targets) > 0 {
		return in.Targets
	}
	out := make([]string, 0, len(bb.Outputs))
	for t := range bb.Outputs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// reuse returns the indexed build under key when it has every wanted
// target and every artifact is still in the store with its size. Any
// problem reading the index means building again, never failing.
func (b *Builder) reuse(ctx context.Context, key string, in workflows.BuildInput, bb config.BuildBehavior, commit string) (workflows.BuildResult, bool) {
	var idx buildIndex
	ok, err := b.Store.GetIndex(ctx, key, &idx)
	if err != nil {
		b.logger().Warn("build index unreadable; building", "key", key, "error", err)
		return workflows.BuildResult{}, false
	}
	if !ok {
		return workflows.BuildResult{}, false
	}
	if !idx.verify(b.Key, key) {
		if idx.MAC == "" {
			// Records of builders from before signed records: a format
			// upgrade, not tampering. The build's new record is signed.
			b.logger().Info("build record from before signed build records; building once more to write a signed one", "key", key)
		} else {
			b.logger().Warn("build record does not verify: not written by a builder holding this store's signing key; building again", "key", key)
		}
		return workflows.BuildResult{}, false
	}
	if idx.Commit != commit || idx.Project != in.Project {
		return workflows.BuildResult{}, false
	}
	res := workflows.BuildResult{Builder: b.Config.Name, Commit: commit, Artifacts: map[string]workflows.ArtifactRef{}, Steps: idx.Steps, Reused: true}
	for _, t := range wantedTargets(in, bb) {
		ref, ok := idx.Artifacts[t]
		if !ok {
			return workflows.BuildResult{}, false
		}
		has, err := b.Store.Has(ctx, artifact.Ref{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size})
		if err != nil || !has {
			b.logger().Info("artifact of an earlier build is gone; building", "key", key, "target", t, "artifact", ref.Key)
			return workflows.BuildResult{}, false
		}
		res.Artifacts[t] = ref
	}
	b.logger().Info("reusing earlier build", "project", in.Project, "commit", commit, "built_by", idx.Transaction)
	return res, true
}

// remember writes the index of a finished build. Failing to write it only
// costs a rebuild next time.
func (b *Builder) remember(ctx context.Context, key string, in workflows.BuildInput, res workflows.BuildResult) {
	if len(b.Key) == 0 {
		// Nothing to sign with: an unsigned record would never be reused.
		return
	}
	idx := buildIndex{Project: in.Project, Commit: res.Commit, Builder: res.Builder, Transaction: in.Transaction,
		Built: time.Now().UTC(), Artifacts: res.Artifacts, Steps: res.Steps}
	idx.MAC = idx.sign(b.Key, key)
	if err := b.Store.PutIndex(ctx, key, idx); err != nil {
		b.logger().Warn("build index not written", "key", key, "error", err)
	}
}
