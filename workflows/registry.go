package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/workflow"
)

// Role is what a registered worker does.
type Role string

const (
	RoleBuilder   Role = "builder"
	RoleInstaller Role = "installer"
)

// Registration is what one builder or installer host advertises, the seed's
// registration. A builder advertises projects; an installer advertises, per
// environment, the named targets it installs.
type Registration struct {
	Role     Role                `json:"role"`
	ID       string              `json:"id"` // builder name or installer host id
	Projects []string            `json:"projects,omitempty"`
	Targets  map[string][]string `json:"targets,omitempty"` // env -> named targets
	// Lease is how long the registration lives without a renewal.
	Lease time.Duration `json:"lease"`
	// Instance names one run of the role's process (RegistryShard): its
	// deregistration names it too, so one left over from an earlier run
	// never removes this run's registration.
	Instance string `json:"instance,omitempty"`
}

// Key identifies a registration in the registry.
func (r Registration) Key() string { return string(r.Role) + "/" + r.ID }

// Lease is a registration as the registry holds it.
type Lease struct {
	Registration
	Registered time.Time `json:"registered"`
	Renewed    time.Time `json:"renewed"`
	Expires    time.Time `json:"expires"`
}

// DeregisterRequest removes a registration at once (graceful shutdown).
type DeregisterRequest struct {
	Role Role   `json:"role"`
	ID   string `json:"id"`
	// Instance, when set, removes the registration only if that run of the
	// role made it (RegistryShard).
	Instance string `json:"instance,omitempty"`
}

func validateRegistration(_ workflow.Context, r Registration) error {
	if r.ID == "" {
		return fmt.Errorf("registration has no id")
	}
	if r.Role != RoleBuilder && r.Role != RoleInstaller {
		return fmt.Errorf("registration role %q is not builder or installer", r.Role)
	}
	if r.Lease < time.Second {
		return fmt.Errorf("registration lease %s is shorter than one second", r.Lease)
	}
	return nil
}

func earliestExpiry(leases map[string]Lease) time.Time {
	var t time.Time
	for _, k := range sortedKeys(leases) {
		if l := leases[k]; t.IsZero() || l.Expires.Before(t) {
			t = l.Expires
		}
	}
	return t
}

func sortedLeases(leases map[string]Lease) []Lease {
	out := make([]Lease, 0, len(leases))
	for _, k := range sortedKeys(leases) {
		out = append(out, leases[k])
	}
	return out
}

// putLease registers or renews r in leases at now: a registration keeps
// when it was first made, a renewal moves its expiry. The Registry and its
// shards share it.
func putLease(leases map[string]Lease, r Registration, now time.Time, logger log.Logger) Lease {
	l, ok := leases[r.Key()]
	if !ok {
		l.Registered = now
		logger.Info("registered", "role", r.Role, "id", r.ID)
	}
	l.Registration = r
	l.Renewed = now
	l.Expires = now.Add(r.Lease)
	leases[r.Key()] = l
	return l
}
