package workflows

import "time"

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

// RegistryState is the Registry workflow's argument, carried across
// continue-as-new.
type RegistryState struct {
	Leases map[string]Lease `json:"leases"`
}

// DeregisterRequest removes a registration at once (graceful shutdown).
type DeregisterRequest struct {
	Role Role   `json:"role"`
	ID   string `json:"id"`
}
