package config

import (
	"fmt"
	"strings"
)

// ManagerRef names one manager a builder or installer serves: the queue its
// workflows run on and the id of its registry. One manager is one
// (namespace, manager queue, registry id).
type ManagerRef struct {
	ManagerQueue string `yaml:"manager_queue"`
	RegistryID   string `yaml:"registry_id"`
}

// String names the manager in messages.
func (m ManagerRef) String() string {
	return fmt.Sprintf("%s (registry %s)", m.ManagerQueue, m.RegistryID)
}

// Served is every manager the builder serves: its managers list, or else
// the one manager of manager_queue and registry_id.
func (c *Builder) Served() []ManagerRef { return served(&c.Service, c.Managers) }

// Served is every manager the installer serves: its managers list, or else
// the one manager of manager_queue and registry_id.
func (c *Installer) Served() []ManagerRef { return served(&c.Service, c.Managers) }

func served(s *Service, ms []ManagerRef) []ManagerRef {
	if len(ms) == 0 {
		return []ManagerRef{{ManagerQueue: s.ManagerQueue, RegistryID: s.RegistryID}}
	}
	return ms
}

// defaultManagers fills in each listed manager's defaults before the
// service's own, and reports whether manager_queue or registry_id name a
// manager other than the list's first: the one-manager spelling and the
// list cannot both say which manager. The service then names the first
// listed manager, for what serves one manager only (logs, say).
func defaultManagers(s *Service, ms []ManagerRef) (conflict bool) {
	if len(ms) == 0 {
		return false
	}
	for i := range ms {
		ms[i].ManagerQueue = orDefault(ms[i].ManagerQueue, DefaultManagerQueue)
		ms[i].RegistryID = orDefault(ms[i].RegistryID, DefaultRegistryID)
	}
	conflict = (s.ManagerQueue != "" && s.ManagerQueue != ms[0].ManagerQueue) ||
		(s.RegistryID != "" && s.RegistryID != ms[0].RegistryID)
	s.ManagerQueue, s.RegistryID = ms[0].ManagerQueue, ms[0].RegistryID
	return conflict
}

// validateManagers reports a manager listed twice and two managers sharing
// a registry, naming the managers.
func validateManagers(ps *problems, ms []ManagerRef, conflict bool) {
	if conflict {
		ps.add("managers", "manager_queue and registry_id name one manager and managers lists them; list every manager under managers and drop manager_queue and registry_id")
	}
	queues := map[string]int{}
	registries := map[string]int{}
	for i, m := range ms {
		field := fmt.Sprintf("managers[%d]", i)
		if j, dup := queues[m.ManagerQueue]; dup {
			ps.add(field, "manager %s is listed twice (also managers[%d]); list each manager once", m.ManagerQueue, j)
			continue
		}
		queues[m.ManagerQueue] = i
		if i > 0 { // the first is the service's manager_queue, checked with it
			checkManagerQueue(ps, field+".manager_queue", m.ManagerQueue)
		}
		if j, dup := registries[m.RegistryID]; dup {
			ps.add(field+".registry_id", "managers %s and %s both name registry %s; each manager has a registry of its own, so give %s its own registry_id",
				ms[j].ManagerQueue, m.ManagerQueue, m.RegistryID, m.ManagerQueue)
			continue
		}
		registries[m.RegistryID] = i
	}
}

// The prefixes of the queues relman names for builders and hosts
// (workflows.BuildQueue, workflows.HostQueue), alone for the default
// manager and after "<manager queue>:" for any other.
const (
	BuildQueuePrefix = "relman-build-"
	HostQueuePrefix  = "relman-host-"
)

// checkManagerQueue refuses a manager queue that is, or could be taken
// for, a builder's or host's queue: a manager polling relman-host-prod
// would take the host prod's installs.
func checkManagerQueue(ps *problems, field, q string) {
	for _, p := range []string{BuildQueuePrefix, HostQueuePrefix} {
		if strings.HasPrefix(q, p) || strings.Contains(q, ":"+p) {
			ps.add(field, "%q looks like a queue relman names for builders or hosts (%s..., %s...); name the manager's queue otherwise, such as relman-manager-team-b", q, BuildQueuePrefix, HostQueuePrefix)
			return
		}
	}
}
