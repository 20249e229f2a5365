// Package testutil gates tests that need privileges or host tools.
//
// Outside CI a missing prerequisite skips the test with a message; in CI
// (CI=true) it fails the test, so a green run always means the test ran.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true or CI=1).
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Require skips (outside CI) or fails (in CI) the test when ok is false.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s", msg)
	}
	t.Skipf("skipping: %s (set up the prerequisite, or run in CI where this fails)", msg)
}

// RequiresRoot gates a test on running as root.
func RequiresRoot(t testing.TB) {
	t.Helper()
	Require(t, os.Geteuid() == 0, "test needs root (uid 0), running as uid %d", os.Geteuid())
}

// RequiresCommand gates a test on a program being on PATH and returns its path.
func RequiresCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Require(t, err == nil, "%s not found on PATH: %v", name, err)
	return p
}
