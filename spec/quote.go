package spec

import "fmt"

// quote quotes s for an error message, cut to 80 bytes so that a hostile
// value cannot flood the log.
func quote(s string) string {
	const limit = 80
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
