package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// LocalIndex is index.json of a local build: named target -> resource, the
// seed's index file.
type LocalIndex struct {
	Project string                   `json:"project"`
	Commit  string                   `json:"commit"`
	Source  string                   `json:"source"`
	Targets map[string]LocalResource `json:"targets"`
}

// LocalResource is one named target's file in a local build.
type LocalResource struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Format string `json:"format"`
}

func (a *app) buildCommand() *cobra.Command {
	var (
		local   bool
		cfgPath string
		out     string
		sel     workflows.Selector
	)
	cmd := &cobra.Command{
		Use:   "build --local PROJECT --config builder.yaml",
		Short: "Build a project on this machine without Temporal, writing its archives and index to disk",
		Long: `Run a builder's build for one project here, without Temporal or a manager
(the seed's utils/template_builder.py): check out the source, run the steps,
and write each named target's resource and index.json (target -> file,
sha256, size) to --out. Use it to try a build behavior before registering it.
For a build through Temporal use: relman release PROJECT --action build.`,
		Example: `  relman build --local template --config examples/builder.yaml --out ./out
  relman build --local template --config examples/builder.yaml --branch feature-x`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !local {
				return usageErr("relman build needs --local; for a build through Temporal use relman release %s --action build", args[0])
			}
			if cfgPath == "" {
				return usageErr("relman build --local needs --config builder.yaml")
			}
			if err := sel.Validate(); err != nil {
				return usageErr("%v", err)
			}
			cfg, err := config.LoadBuilder(cfgPath)
			if err != nil {
				return err
			}
			idx, err := buildLocal(cmd.Context(), cfg, args[0], sel, out, a.opts.Stderr)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(idx)
			}
			fmt.Fprintf(a.opts.Stdout, "built %s at %s into %s\n", idx.Project, idx.Commit, out)
			names := slices.Sorted(maps.Keys(idx.Targets))
			for _, t := range names {
				r := idx.Targets[t]
				fmt.Fprintf(a.opts.Stdout, "  %s  %s  sha256:%s  %d bytes\n", t, r.File, r.SHA256, r.Size)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&local, "local", false, "build here, without Temporal")
	f.StringVarP(&cfgPath, "config", "c", "", "the builder config that defines the project")
	f.StringVar(&out, "out", "relman-build", "directory for the resources and index.json")
	f.StringVar(&sel.Branch, "branch", "", "build this branch")
	f.StringVar(&sel.Tag, "tag", "", "build this tag")
	f.StringVar(&sel.Revision, "revision", "", "build this commit or revision")
	f.StringVar(&sel.URL, "url", "", "build from this repository URL")
	return cmd
}

// buildLocal runs the build with a store inside out, then gives each
// artifact its file name and writes the index.
func buildLocal(ctx context.Context, cfg *config.Builder, project string, sel workflows.Selector, out string, logw io.Writer) (*LocalIndex, error) {
	if _, ok := cfg.Projects[project]; !ok {
		names := slices.Sorted(maps.Keys(cfg.Projects))
		return nil, fmt.Errorf("builder config %s has no project %q; it builds %v", cfg.Path(), project, names)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	objects := filepath.Join(out, ".objects")
	defer os.RemoveAll(objects)
	store, err := artifact.OpenStore(ctx, objects)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	b := &activities.Builder{Config: cfg, Store: store, Log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	res, err := b.BuildLocal(ctx, workflows.BuildInput{Transaction: "local", Project: project, Source: sel})
	if err != nil {
		return nil, err
	}
	idx := &LocalIndex{Project: project, Commit: res.Commit, Source: sel.String(), Targets: map[string]LocalResource{}}
	for t, ref := range res.Artifacts {
		name := t + ".tar.gz"
		if ref.Format == "file" {
			name = t + "-" + filepath.Base(ref.Name)
		}
		if err := copyObject(ctx, store, ref, filepath.Join(out, name)); err != nil {
			return nil, err
		}
		idx.Targets[t] = LocalResource{File: name, SHA256: ref.SHA256, Size: ref.Size, Format: ref.Format}
	}
	b2, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	return idx, os.WriteFile(filepath.Join(out, "index.json"), append(b2, '\n'), 0o644)
}

func copyObject(ctx context.Context, store artifact.Store, ref workflows.ArtifactRef, dst string) error {
	r, err := store.Open(ctx, artifact.Ref{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size})
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
