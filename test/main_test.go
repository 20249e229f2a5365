// Package test holds the end-to-end tests of oci-keyring-hook: real runc and
// crun start containers from a throwaway rootfs holding only a static probe
// (test/probe), with and without the hook, and the probe reports from inside
// the container which session keyring it really got.
//
// The tests need root, runc and crun (crun 1.8 through unshare(1) on hybrid
// cgroup hosts). Outside CI a missing prerequisite skips a test; with CI=true
// it fails it. Run them with:
//
//	sudo CI=true go test -count=1 -v ./test/...
package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Set by TestMain.
var (
	// workDir holds the binaries and the shared rootfs. It is world-readable
	// so that user-namespaced containers can reach the rootfs.
	workDir string
	// hookBin is the built hook, or "" when it did not build (hookErr).
	hookBin string
	hookErr error
	// probeBin is the probe built for the host; rootfsDir has it as /probe.
	probeBin  string
	rootfsDir string
)

// The suite runs in a session keyring of its own, like a login session's,
// holding one secret key: what a careless runtime hands to a container.
const (
	hostSessionEnv = "OKH_E2E_HOST_SESSION" // set once the re-exec is done
	hostSecretDesc = "okh-e2e-host-secret"
	hostSecret     = "the host's session secret"
)

func TestMain(m *testing.M) {
	if os.Getenv(hostSessionEnv) == "" {
		if err := execInOwnSession(); err != nil {
			// Not fatal: the tests compare with whatever @s the suite has.
			fmt.Fprintln(os.Stderr, "e2e: running in the inherited session keyring:", err)
		}
	}
	os.Exit(run(m))
}

// execInOwnSession gives the test process a fresh session keyring holding
// hostSecretDesc, then re-executes the test binary in it. The keyring calls
// and execve(2) happen on one locked thread: KEYCTL_JOIN_SESSION_KEYRING
// changes the calling thread only, and execve hands that thread's keyrings
// to the new program. It returns only on failure; the thread then stays
// locked to the main goroutine, so no test runs on a thread whose keyring
// differs from the others'.
func execInOwnSession() error {
	runtime.LockOSThread()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("okh-e2e-host.%d", os.Getpid())
	if _, err := unix.KeyctlJoinSessionKeyring(name); err != nil {
		return fmt.Errorf("joining a session keyring: %w", err)
	}
	if _, err := unix.AddKey("user", hostSecretDesc, []byte(hostSecret), unix.KEY_SPEC_SESSION_KEYRING); err != nil {
		return fmt.Errorf("adding the host secret: %w", err)
	}
	env := append(os.Environ(), hostSessionEnv+"="+name)
	return syscall.Exec(self, os.Args, env)
}

func run(m *testing.M) int {
	var err error
	workDir, err = os.MkdirTemp("", "okh-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(workDir)
	if err := os.Chmod(workDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	// The probe is this suite's own code: without it nothing can run.
	probeBin = filepath.Join(workDir, "probe")
	if err := goBuild(probeBin, "./test/probe"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the probe:", err)
		return 1
	}
	rootfsDir = filepath.Join(workDir, "rootfs")
	if err := makeRootfs(rootfsDir, probeBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: making the rootfs:", err)
		return 1
	}

	// The hook is the code under test: if it does not build, the baseline
	// tests still run and every test that needs it fails with this error.
	bin := filepath.Join(workDir, "oci-keyring-hook")
	if hookErr = goBuild(bin, "./hook"); hookErr == nil {
		hookBin = bin
	} else {
		fmt.Fprintln(os.Stderr, "e2e: the hook did not build; tests that need it will fail:", hookErr)
	}
	return m.Run()
}

// goBuild builds a static binary of pkg (relative to the module root).
func goBuild(out, pkg string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go not on PATH: %w", err)
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = ".." // the module root, seen from test/
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// requireHook fails the test when the hook binary did not build: the hook
// is not a prerequisite to skip on, it is what the test is about.
func requireHook(t *testing.T) string {
	t.Helper()
	if hookBin == "" {
		t.Fatalf("the hook did not build: %v", hookErr)
	}
	return hookBin
}
