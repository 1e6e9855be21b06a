package activities_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// fakeRegistry is the RegistryReader seam: it returns the leases it is given.
// With filter set it drops leases expired at the time Plan passes, as the
// real registry.List does; it records that time either way.
type fakeRegistry struct {
	leases []workflows.Lease
	filter bool
	err    error
	gotNow time.Time
}

func (f *fakeRegistry) List(_ context.Context, now time.Time) ([]workflows.Lease, error) {
	f.gotNow = now
	if f.err != nil {
		return nil, f.err
	}
	if !f.filter {
		return slices.Clone(f.leases), nil
	}
	var live []workflows.Lease
	for _, l := range f.leases {
		if l.Expires.After(now) {
			live = append(live, l)
		}
	}
	return live, nil
}

var planNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func builderLease(id string, expires time.Time, projects ...string) workflows.Lease {
	return workflows.Lease{
		Registration: workflows.Registration{Role: workflows.RoleBuilder, ID: id, Projects: projects, Lease: time.Minute},
		Registered:   expires.Add(-time.Minute), Renewed: expires.Add(-time.Minute), Expires: expires,
	}
}

func installerLease(id string, targets map[string][]string) workflows.Lease {
	exp := planNow.Add(time.Minute)
	return workflows.Lease{
		Registration: workflows.Registration{Role: workflows.RoleInstaller, ID: id, Targets: targets, Lease: time.Minute},
		Registered:   planNow, Renewed: planNow, Expires: exp,
	}
}

func testManagerConfig() *config.Manager {
	return &config.Manager{
		Environments: map[string]config.Environment{"test": {}, "prod": {Protected: true}},
		Projects: map[string]config.ProjectDef{
			"web":      {Targets: []string{"site", "api"}},
			"template": {Targets: []string{"template"}},
		},
		Timeouts: config.ReleaseTimeouts{Build: 42 * time.Minute, Install: 17 * time.Minute, Host: 3 * time.Minute},
	}
}

// liveLeases: a builder for web; installers in test for both targets on
// several hosts (given out of order), one prod-only host, and one host in
// test that advertises a target of another project.
func liveLeases() []workflows.Lease {
	return []workflows.Lease{
		builderLease("builder-1", planNow.Add(time.Minute), "web"),
		installerLease("web-3", map[string][]string{"test": {"site"}}),
		installerLease("web-1", map[string][]string{"test": {"site", "api"}}),
		installerLease("web-2", map[string][]string{"test": {"site", "api"}, "prod": {"site"}}),
		installerLease("prod-1", map[string][]string{"prod": {"site", "api"}}),
		installerLease("other-1", map[string][]string{"test": {"template"}}),
	}
}

func install(project, env string) workflows.Request {
	return workflows.Request{Project: project, Action: workflows.ActionInstall, Env: env}
}

func TestPlanRejects(t *testing.T) {
	tests := map[string]struct {
		req    workflows.Request
		leases []workflows.Lease
		filter bool
		want   []string // substrings of the message
	}{
		"unknown project": {
			req:    install("nope", "test"),
			leases: liveLeases(),
			want:   []string{`unknown project "nope"`, `"template", "web"`},
		},
		"unknown environment": {
			req:    install("web", "staging"),
			leases: liveLeases(),
			want:   []string{`unknown environment "staging"`, `"prod", "test"`},
		},
		"install without environment": {
			req:    install("web", ""),
			leases: liveLeases(),
			want:   []string{"needs an environment", `"prod", "test"`},
		},
		"unknown action": {
			req:    workflows.Request{Project: "web", Action: "deploy", Env: "test"},
			leases: liveLeases(),
			want:   []string{`unknown action "deploy"`, "build or install"},
		},
		"two selectors": {
			req:    workflows.Request{Project: "web", Action: workflows.ActionBuild, Source: workflows.Selector{Branch: "b", Tag: "v1"}},
			leases: liveLeases(),
			want:   []string{"choose one source selector"},
		},
		"trunk and branch": {
			req:    workflows.Request{Project: "web", Action: workflows.ActionBuild, Source: workflows.Selector{Trunk: true, Branch: "b"}},
			leases: liveLeases(),
			want:   []string{"choose one source selector"},
		},
		"no builder registered": {
			req:    install("web", "test"),
			leases: liveLeases()[1:],
			want:   []string{`no builder advertises project "web"`},
		},
		"builder for another project only": {
			req:    workflows.Request{Project: "template", Action: workflows.ActionBuild},
			leases: liveLeases(),
			want:   []string{`no builder advertises project "template"`},
		},
		"expired builder filtered by the reader": {
			req:    workflows.Request{Project: "web", Action: workflows.ActionBuild},
			leases: []workflows.Lease{builderLease("builder-old", planNow.Add(-time.Second), "web")},
			filter: true,
			want:   []string{`no builder advertises project "web"`},
		},
		"target without installer host": {
			req: install("web", "test"),
			leases: []workflows.Lease{
				builderLease("builder-1", planNow.Add(time.Minute), "web"),
				installerLease("web-1", map[string][]string{"test": {"site"}, "prod": {"api"}}),
			},
			want: []string{`named target "api"`, `project "web"`, `environment "test"`},
		},
		"no installer at all": {
			req:    install("web", "prod"),
			leases: []workflows.Lease{builderLease("builder-1", planNow.Add(time.Minute), "web")},
			want:   []string{`"site", "api"`, `environment "prod"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reg := &fakeRegistry{leases: tc.leases, filter: tc.filter}
			m := &activities.Manager{Config: testManagerConfig(), Registry: reg, Now: func() time.Time { return planNow }}
			_, err := m.Plan(context.Background(), workflows.PlanInput{Request: tc.req})
			app := appError(t, err, workflows.ErrRejected, true)
			mustContain(t, app.Message(), tc.want...)
		})
	}
}

func TestPlanExpiredLeaseCountsOnlyIfReaderFilters(t *testing.T) {
	// Plan leaves expiry to the reader: it passes its clock's time and uses
	// whatever comes back.
	reg := &fakeRegistry{leases: []workflows.Lease{builderLease("builder-old", planNow.Add(-time.Second), "web")}}
	m := &activities.Manager{Config: testManagerConfig(), Registry: reg, Now: func() time.Time { return planNow }}
	if _, err := m.Plan(context.Background(), workflows.PlanInput{Request: workflows.Request{Project: "web", Action: workflows.ActionBuild}}); err != nil {
		t.Fatalf("unfiltered reader: %v", err)
	}
	if !reg.gotNow.Equal(planNow) {
		t.Errorf("reader got now %v, want %v", reg.gotNow, planNow)
	}
}

func TestPlanRegistryErrorIsRetryable(t *testing.T) {
	boom := errors.New("registry unreachable")
	m := &activities.Manager{Config: testManagerConfig(), Registry: &fakeRegistry{err: boom}}
	_, err := m.Plan(context.Background(), workflows.PlanInput{Request: install("web", "test")})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the registry's error as is (retryable)", err)
	}
}

func TestPlanSuccess(t *testing.T) {
	tests := map[string]struct {
		req  workflows.Request
		want workflows.Plan
	}{
		"install in test": {
			req: install("web", "test"),
			want: workflows.Plan{
				Targets: []string{"site", "api"},
				Hosts: map[string][]string{
					"site": {"web-1", "web-2", "web-3"},
					"api":  {"web-1", "web-2"},
				},
			},
		},
		"install in prod": {
			req: install("web", "prod"),
			want: workflows.Plan{
				Targets: []string{"site", "api"},
				Hosts: map[string][]string{
					"site": {"prod-1", "web-2"},
					"api":  {"prod-1"},
				},
			},
		},
		"install with a selector": {
			req: workflows.Request{Project: "web", Action: workflows.ActionInstall, Env: "prod", Source: workflows.Selector{Tag: "v1.2"}},
			want: workflows.Plan{
				Targets: []string{"site", "api"},
				Hosts:   map[string][]string{"site": {"prod-1", "web-2"}, "api": {"prod-1"}},
			},
		},
		"build needs no hosts": {
			req:  workflows.Request{Project: "web", Action: workflows.ActionBuild},
			want: workflows.Plan{Targets: []string{"site", "api"}},
		},
		"build ignores env": {
			req:  workflows.Request{Project: "web", Action: workflows.ActionBuild, Env: "nowhere"},
			want: workflows.Plan{Targets: []string{"site", "api"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testManagerConfig()
			m := &activities.Manager{Config: cfg, Registry: &fakeRegistry{leases: liveLeases(), filter: true}, Now: func() time.Time { return planNow }}
			got, err := m.Plan(context.Background(), workflows.PlanInput{Request: tc.req})
			if err != nil {
				t.Fatal(err)
			}
			tc.want.BuildTimeout = 42 * time.Minute
			tc.want.InstallTimeout = 17 * time.Minute
			tc.want.HostTimeout = 3 * time.Minute
			// With authentication off the claim is all there is of who asked.
			tc.want.Signer = workflows.ClaimedSigner("")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan =\n %+v\nwant\n %+v", got, tc.want)
			}
			// The plan's targets are a copy: changing them must not touch the config.
			if len(got.Targets) > 0 {
				got.Targets[0] = "changed"
				if cfg.Projects["web"].Targets[0] != "site" {
					t.Error("plan's targets alias the manager's config")
				}
			}
		})
	}
}
