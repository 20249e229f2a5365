package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// runCheckBinary runs the built hook's check command through prefix (a
// program that changes credentials, or none) and decodes its --json report.
func runCheckBinary(t *testing.T, bin string, prefix ...string) (checkReport, int, string) {
	t.Helper()
	argv := append(prefix, bin, "check", "--json")
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %q: %v", argv, err)
	}
	var r checkReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%q printed no JSON report: %v\nstdout: %s\nstderr: %s", argv, err, stdout.String(), stderr.String())
	}
	return r, code, stderr.String()
}

func findCheck(t *testing.T, r checkReport, name string) checkResult {
	t.Helper()
	for _, c := range r.Checks {
		if c.Check == name {
			return c
		}
	}
	t.Fatalf("no %q in the report: %+v", name, r)
	return checkResult{}
}

var standinPid = regexp.MustCompile(`stand-in[^(]*\(pid (\d+)\)`)

// assertGone checks that the stand-in named in a self-test detail no
// longer exists, not even as a zombie.
func assertGone(t *testing.T, detail string) {
	t.Helper()
	m := standinPid.FindStringSubmatch(detail)
	if m == nil {
		t.Fatalf("self-test detail names no stand-in pid: %q", detail)
	}
	pid, _ := strconv.Atoi(m[1])
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("stand-in pid %d still exists after the check (kill 0: %v): %s", pid, err, procState(pid))
	}
}

func procState(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return strings.TrimSpace(string(b))
}

// The real command on this machine, as root: it must pass, and its
// self-test must have entered and restored a real stand-in.
func TestCheckPassesAsRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	r, code, stderr := runCheckBinary(t, hookBinary)
	if code != exitOK || !r.OK {
		t.Fatalf("check exited %d (ok %v), stderr %q; report %+v", code, r.OK, stderr, r)
	}
	st := findCheck(t, r, "self-test")
	if st.Status != statusOK {
		t.Fatalf("self-test: %+v", st)
	}
	for _, k := range []string{"serial", "name", "perm", "enter_us", "install_us", "leave_us", "total_us"} {
		if _, ok := st.Values[k]; !ok {
			t.Errorf("self-test values lack %q: %+v", k, st.Values)
		}
	}
	if n, _ := st.Values["name"].(string); !strings.HasPrefix(n, "okh-check-") || st.Values["perm"] != keyring.DefaultPerm.String() {
		t.Errorf("self-test installed %v perm %v; want okh-check-<pid> perm %s", st.Values["name"], st.Values["perm"], keyring.DefaultPerm)
	}
	assertGone(t, st.Detail)
	for _, c := range r.Checks {
		if c.Status == statusFail || (c.Status == statusWarn && c.Fix == "") {
			t.Errorf("%s: %+v", c.Status, c)
		}
	}

	// The table says the same.
	out, err := exec.Command(hookBinary, "check").Output()
	if err != nil {
		t.Fatalf("check (table): %v\n%s", err, out)
	}
	for _, re := range []string{
		`(?m)^CHECK +STATUS +DETAIL$`,
		`(?m)^self-test +ok +stand-in init \(pid \d+\) got keyring \d+ "okh-check-\d+" perm 0x3f010000`,
		`\n\nthe hook would work here( \(\d+ warning\(s\)\))?\n$`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("table output does not match %s:\n%s", re, out)
		}
	}
}

// As an unprivileged user the check must fail, and its self-test must say
// that attaching needs CAP_SYS_PTRACE: runc init, like the stand-in, is not
// dumpable, so sharing its uid is not enough.
func TestCheckFailsWithoutPtracePrivilege(t *testing.T) {
	testutil.RequiresRoot(t)
	setpriv := testutil.RequiresCommand(t, "setpriv")
	// The test's own temporary directories are private to root.
	dir, err := os.MkdirTemp("", "okh-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "oci-keyring-hook")
	copyExecutable(t, hookBinary, bin)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	r, code, stderr := runCheckBinary(t, bin, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
	if code != exitFailure || r.OK {
		t.Fatalf("check as uid 65534 exited %d (ok %v), stderr %q; want 1", code, r.OK, stderr)
	}
	st := findCheck(t, r, "self-test")
	if st.Status != statusFail || !strings.Contains(st.Detail, "PTRACE_SEIZE") || !strings.Contains(st.Detail, "CAP_SYS_PTRACE") || !strings.Contains(st.Fix, "root") {
		t.Errorf("self-test as uid 65534: %+v; want a failure naming PTRACE_SEIZE and CAP_SYS_PTRACE, fixed by running as root", st)
	}
	assertGone(t, st.Detail)
	if c := findCheck(t, r, "cap-sys-ptrace"); c.Status != statusFail || !strings.Contains(c.Fix, "root") {
		t.Errorf("cap-sys-ptrace as uid 65534: %+v", c)
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// The self-test run in this process: the stand-in is the test binary
// re-executed, which init() turns into the stand-in before any test code.
func TestSelfTestInProcess(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		mode keyring.Mode
		perm keyring.Perm
	}{
		{keyring.Named, keyring.DefaultPerm},
		{keyring.Anonymous, keyring.DefaultPerm},
		{keyring.Named, 0x3f030000},
	} {
		t.Run(fmt.Sprintf("%s-%s", tc.mode, tc.perm), func(t *testing.T) {
			st := selfTest{cmd: standinCommand(), mode: tc.mode, perm: tc.perm, timeout: 2 * time.Second, bound: 10 * time.Second}
			res, err := st.run()
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("okh-check-%d", res.Pid)
			if tc.mode == keyring.Anonymous {
				want = keyring.AnonymousName
			}
			if d := res.Result.Desc; d.Name != want || d.Perm != tc.perm || d.Type != "keyring" || res.Result.Serial == res.Result.Anonymous && tc.mode == keyring.Named {
				t.Errorf("installed %+v; want keyring %q perm %s", res.Result, want, tc.perm)
			}
			if res.Total <= 0 || res.Timings.Enter <= 0 {
				t.Errorf("timings not measured: %+v total %v", res.Timings, res.Total)
			}
			assertGone(t, fmt.Sprintf("stand-in (pid %d)", res.Pid))
		})
	}
}

// Failures end with the stand-in killed and reaped, within the bound.
func TestSelfTestFailuresCleanUp(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name string
		st   selfTest
		want string
	}{
		{"stand-in never ready", selfTest{cmd: exec.Command("sleep", "30"), mode: keyring.Named, perm: keyring.DefaultPerm, timeout: time.Second, bound: 300 * time.Millisecond},
			"did not start"},
		// Install refuses the mask after the stand-in was entered.
		{"install fails inside", selfTest{cmd: standinCommand(), mode: keyring.Named, perm: 0x3f1b0000, timeout: 2 * time.Second, bound: 10 * time.Second},
			"grants search to a non-possessor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, err := tc.st.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("self-test error %v; want one mentioning %q", err, tc.want)
			}
			if d := time.Since(start); d > tc.st.bound+2*time.Second {
				t.Errorf("took %v with a bound of %v", d, tc.st.bound)
			}
			if res.Pid == 0 {
				t.Fatal("no stand-in was started")
			}
			assertGone(t, fmt.Sprintf("stand-in (pid %d)", res.Pid))
		})
	}
}

// verifyStandin is what catches a stand-in the injection harmed.
func TestVerifyStandin(t *testing.T) {
	desc := keyring.Description{Type: "keyring", Perm: keyring.DefaultPerm, Name: "okh-check-42"}
	res := selfTestResult{Pid: 42, Result: keyring.Result{Serial: 7, Desc: desc}}
	good := standinReport{Pid: 42, Tid: 42, Ret: 4, Data: "data", Serial: 7, Keyring: desc.String()}
	if err := verifyStandin(good, res, "data"); err != nil {
		t.Fatalf("a faithful report: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*standinReport)
		want string
	}{
		{"read interrupted", func(r *standinReport) { r.Ret, r.Errno, r.Data = -1, 512, "" }, "not restored"},
		{"short read", func(r *standinReport) { r.Ret, r.Data = 2, "da" }, "not restored"},
		{"other keyring", func(r *standinReport) { r.Serial = 8 }, "the hook installed 7"},
		{"other permissions", func(r *standinReport) { r.Keyring = strings.Replace(r.Keyring, "3f010000", "3f1b0000", 1) }, "the hook installed"},
		{"still traced", func(r *standinReport) { r.TracerPid = 99 }, "still traced by 99"},
		{"other thread", func(r *standinReport) { r.Tid = 43 }, "main thread"},
		{"own error", func(r *standinReport) { r.Err = "keyctl failed" }, "keyctl failed"},
	} {
		rep := good
		tc.edit(&rep)
		if err := verifyStandin(rep, res, "data"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error mentioning %q", tc.name, err, tc.want)
		}
	}
}
