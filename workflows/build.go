package workflows

import "time"

// BuildInput is the build activity's argument.
type BuildInput struct {
	Transaction string   `json:"transaction"`
	Project     string   `json:"project"`
	Source      Selector `json:"source"`
	Targets     []string `json:"targets"`
	// Rebuild skips the lookup of an earlier identical build.
	Rebuild bool `json:"rebuild,omitempty"`
}

// BuildResult is what a build produced.
type BuildResult struct {
	Builder   string                 `json:"builder"`
	Commit    string                 `json:"commit"`
	Artifacts map[string]ArtifactRef `json:"artifacts"` // named target -> artifact
	Steps     []StepResult           `json:"steps"`
	// Reused: no step ran; the artifacts are those of an earlier build of
	// the same commit and build config (Steps are that build's).
	Reused bool `json:"reused,omitempty"`
}

// StepResult records one build step.
type StepResult struct {
	Name     string        `json:"name"`
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration"`
}

// ArtifactRef names a build output in the artifact store. The bytes never
// travel through Temporal; only this reference does.
type ArtifactRef struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Format is "tar.gz" for a directory output, "file" for a single file.
	Format string `json:"format"`
	// Name is the file name of a single-file output.
	Name string `json:"name,omitempty"`
}
