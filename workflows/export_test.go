package workflows

// SetDeskBounds makes the Desk's bounds small for a test; the returned
// func puts them back.
func SetDeskBounds(questions, activities int) (restore func()) {
	q, a := maxDeskQuestions, maxDeskActivities
	maxDeskQuestions, maxDeskActivities = questions, activities
	return func() { maxDeskQuestions, maxDeskActivities = q, a }
}

// VersionsOf is the ordered version list of a workflow type.
var VersionsOf = versionsOf

// Versioned are the workflow types with a version list.
func Versioned() []string {
	var out []string
	for _, v := range versions {
		out = append(out, v.typ)
	}
	return out
}

func init() {
	// Every version check in a test names a change its type lists.
	unlisted = func(typ, changeID string) {
		panic("workflow " + typ + " checks version " + changeID + ", which its list in versions.go does not name")
	}
}
