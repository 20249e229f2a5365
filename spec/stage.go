package spec

import "fmt"

// Stage is the hook stage word given as the last argument.
type Stage string

// The stages at which the container's init exists but has not yet called
// execve, so its session keyring can still be replaced.
const (
	StagePrestart      Stage = "prestart"
	StageCreateRuntime Stage = "createRuntime"
)

// ParseStage returns the Stage spelled exactly s.
func ParseStage(s string) (Stage, error) {
	switch st := Stage(s); st {
	case StagePrestart, StageCreateRuntime:
		return st, nil
	}
	return "", fmt.Errorf("unknown hook stage %s (valid: %q, %q)", quote(s), StagePrestart, StageCreateRuntime)
}
