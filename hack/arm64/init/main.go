// Command init is /init of the initramfs that hack/test-arm64.sh boots
// under qemu-system-aarch64: it sets up just enough of a system for the
// injection tests (proc, sys, dev, tmp, a cgroup v1 freezer, a session
// keyring as a login would have), runs every test binary in /okh with CI=true
// so nothing skips silently, prints one machine-readable result line, and
// powers the machine off.
//
//	OKH-ARM64-RESULT: status=ok pass=N fail=0 skip=0 binaries=B
//
// status is "ok" only if every binary exited 0 and no test failed or
// skipped. The test binaries' flags come from /okh/flags (one per line);
// each binary's own flags, if any, from /okh/<name>.flags.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	dir          = "/okh"
	resultPrefix = "OKH-ARM64-RESULT:"
)

func main() {
	status := run()
	fmt.Println(status)
	unix.Sync()
	// Power off; with qemu's -no-reboot and panic=-1 an exit of init ends
	// the machine too, should this fail.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "init: reboot(POWER_OFF): %v\n", err)
	}
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "init: "+format+"\n", args...)
}

func run() string {
	if err := setup(); err != nil {
		logf("setup: %v", err)
		return fmt.Sprintf("%s status=setup-failed pass=0 fail=0 skip=0 binaries=0", resultPrefix)
	}
	bins, err := filepath.Glob(filepath.Join(dir, "*.test"))
	if err != nil || len(bins) == 0 {
		logf("no test binaries in %s: %v", dir, err)
		return fmt.Sprintf("%s status=no-tests pass=0 fail=0 skip=0 binaries=0", resultPrefix)
	}
	sort.Strings(bins)
	common := readFlags(filepath.Join(dir, "flags"))
	var total counts
	ok := true
	for _, bin := range bins {
		name := strings.TrimSuffix(filepath.Base(bin), ".test")
		args := append(append([]string{"-test.v"}, common...), readFlags(filepath.Join(dir, name+".flags"))...)
		c, err := runTests(bin, args)
		logf("%s: pass=%d fail=%d skip=%d exit=%v", name, c.pass, c.fail, c.skip, err)
		if err != nil || c.fail > 0 || c.skip > 0 || c.pass == 0 {
			ok = false
		}
		total.add(c)
	}
	status := "ok"
	if !ok {
		status = "failed"
	}
	return fmt.Sprintf("%s status=%s pass=%d fail=%d skip=%d binaries=%d", resultPrefix, status, total.pass, total.fail, total.skip, len(bins))
}

func setup() error {
	mounts := []struct {
		src, target, fstype, data string
	}{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", ""},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
		{"tmpfs", "/sys/fs/cgroup", "tmpfs", "mode=0755"},
		// Freeze (test/standin) needs the v1 freezer hierarchy.
		{"cgroup", "/sys/fs/cgroup/freezer", "cgroup", "freezer"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.target, m.fstype, 0, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
		if m.target == "/dev" {
			consoleStdio()
		}
	}
	// A process started by the kernel has no session keyring of its own;
	// give the tests one, as a login session would, so "not the host's"
	// has something to compare against.
	if _, err := unix.KeyctlJoinSessionKeyring("okh-arm64-login"); err != nil {
		return fmt.Errorf("keyctl(JOIN_SESSION_KEYRING): %w", err)
	}
	for k, v := range map[string]string{
		"CI":     "true",
		"PATH":   "/bin",
		"HOME":   "/tmp",
		"TMPDIR": "/tmp",
		// test/standin runs this prebuilt single-threaded C stand-in
		// instead of compiling standin.c with cc.
		"OKH_STANDIN_C": "/bin/standin",
	} {
		os.Setenv(k, v)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "env")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && k != "" {
				os.Setenv(k, v)
			}
		}
	}
	var u unix.Utsname
	unix.Uname(&u)
	logf("%s %s %s, %d CPUs", unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), numCPU())
	return nil
}

// consoleStdio makes fds 0-2 the console when the kernel could not open
// it for init (an initramfs without /dev/console).
func consoleStdio() {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for i := 0; i < 3; i++ {
		unix.Dup3(fd, i, 0)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func numCPU() int {
	var s unix.CPUSet
	if unix.SchedGetaffinity(0, &s) != nil {
		return 0
	}
	return s.Count()
}

func readFlags(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

type counts struct{ pass, fail, skip int }

func (c *counts) add(o counts) { c.pass += o.pass; c.fail += o.fail; c.skip += o.skip }

// A test's (or subtest's) verdict in -test.v output.
var verdict = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): `)

// runTests runs one test binary, copying its output to the console and
// counting verdicts. The test binary is its own process group leader's
// child: init reaps whatever its stand-ins leave behind.
func runTests(bin string, args []string) (counts, error) {
	var c counts
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/tmp"
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return c, err
	}
	logf("running %s %s", bin, strings.Join(args, " "))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return c, err
	}
	sc := bufio.NewScanner(io.TeeReader(out, os.Stdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := verdict.FindStringSubmatch(sc.Text()); m != nil {
			switch m[1] {
			case "PASS":
				c.pass++
			case "FAIL":
				c.fail++
			case "SKIP":
				c.skip++
			}
		}
	}
	err = cmd.Wait()
	logf("%s took %v", filepath.Base(bin), time.Since(start).Round(time.Millisecond))
	return c, err
}
