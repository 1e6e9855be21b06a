package workflows

// SetDeskBounds makes the Desk's bounds small for a test; the returned
// func puts them back.
func SetDeskBounds(questions, activities int) (restore func()) {
	q, a := maxDeskQuestions, maxDeskActivities
	maxDeskQuestions, maxDeskActivities = questions, activities
	return func() { maxDeskQuestions, maxDeskActivities = q, a }
}
