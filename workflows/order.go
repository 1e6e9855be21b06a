package workflows

import "sort"

// sortedKeys is the one place workflows range over a map: the keys are
// sorted before anything depends on their order, so replays see the same
// sequence.
//
//workflowcheck:ignore
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
