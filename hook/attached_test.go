package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Faults while the hook binary holds its target: the target is always
// left running as it was (untraced, the registers of its blocked call and
// its signal mask unchanged), and no signal sent to it meanwhile is lost.

// heldMask is SigBlk of a thread the hook holds: PTRACE_SETSIGMASK with
// every signal, less SIGKILL and SIGSTOP, which the kernel never blocks.
// On amd64 the engine single-steps over its calls and leaves SIGTRAP
// unblocked too (heldMaskStep); see keyring's stepOverSyscall.
const (
	heldMask     = "fffffffffffbfeff"
	heldMaskStep = "fffffffffffbfeef"
)

func isHeldMask(m string) bool { return m == heldMask || m == heldMaskStep }

type before struct{ mask, syscall string }

func snapshotOf(t *testing.T, pid int) before {
	t.Helper()
	m, err := standin.SigBlk(pid)
	if err != nil {
		t.Fatal(err)
	}
	return before{m, standin.SyscallLine(pid)}
}

// checkPutBack waits for the target to be untraced and blocked in its read
// again, with the same registers and mask as before.
func checkPutBack(t *testing.T, pid int, b before) {
	t.Helper()
	for i := 0; standin.TracerPid(pid) != 0; i++ {
		if i == 1000 {
			t.Fatalf("target left traced: %s", standin.State(pid))
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := standin.WaitBlocked(pid, unix.SYS_READ, 5*time.Second); err != nil {
		t.Fatalf("target not back in its read: %v", err)
	}
	if a := snapshotOf(t, pid); a != b {
		t.Errorf("target not put back as it was:\nbefore %+v\nafter  %+v", b, a)
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func lastLogLine(t *testing.T, path string) map[string]any {
	t.Helper()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	m := map[string]any{}
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return m
	}
	dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	return m
}

// A target stopped by SIGSTOP before the hook runs gets its keyring and is
// left stopped, as it was; SIGCONT resumes its read, which completes.
func TestHookStoppedTarget(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	b := snapshotOf(t, p.Pid)
	if err := unix.Kill(p.Pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitProcState(t, p.Pid, 'T')
	id := fmt.Sprintf("stopped-%d", p.Pid)
	r := runHook(t, runcState(id, p.Pid, nil), "prestart")
	if r.code != 0 {
		t.Fatalf("hook exited %d: %s", r.code, r.stderr)
	}
	time.Sleep(20 * time.Millisecond)
	if st := standin.State(p.Pid); !strings.Contains(st, ") T ") || standin.TracerPid(p.Pid) != 0 {
		t.Errorf("target not left stopped and untraced: %s", st)
	}
	if err := unix.Kill(p.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	checkPutBack(t, p.Pid, b)
	_, k := finishRead(t, p)
	if fmt.Sprint(r.log["serial"]) != fmt.Sprint(k.Serial) || k.Name != id {
		t.Errorf("keyring after exec %+v; the hook logged %v", k, r.log)
	}
}

// The remote mmap fails (RLIMIT_AS at the target's size): one line naming
// the call and the errno, and the target put back; it completes its read.
// It keeps the anonymous keyring the hook joined before the mmap, not the
// host's.
func TestHookMmapFails(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	p := standin.Start(t, standin.CRead)
	b := snapshotOf(t, p.Pid)
	restore := standin.LimitAddressSpace(t, p.Pid)
	r := runHook(t, runcState("nomem", p.Pid, nil), "prestart")
	checkRefusal(t, r, "remote mmap(NULL, 4096")
	if !strings.Contains(r.stderr, "cannot allocate memory") {
		t.Errorf("the error does not give the errno: %q", r.stderr)
	}
	checkPutBack(t, p.Pid, b)
	restore()
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ret != 5 || rep.Data != "hello" {
		t.Errorf("read ended with %+v", rep)
	}
	if k.Serial == host.Serial || k.Name != "_ses" {
		t.Errorf("keyring after exec %+v; want the anonymous one the hook joined first (host's is %d)", k, host.Serial)
	}
}

// Signals rain on the target while the hook runs: real-time signals
// queue, so the stand-in must handle exactly as many as were sent,
// whether they arrived before, while or after the hook held it. The hook
// may succeed (a stop that lands in a signal handler rather than in the
// read is let go and taken again), or refuse should the deadline come
// first; either way the target is put back and finishes its read.
func TestHookSignalStorm(t *testing.T) {
	testutil.RequiresRoot(t)
	outcomes := map[string]int{}
	for i := 0; i < 10; i++ {
		host := standin.Current()
		p := standin.Start(t, standin.CReadSignals)
		b := snapshotOf(t, p.Pid)
		logFile := filepath.Join(t.TempDir(), "log")
		id := fmt.Sprintf("storm-%d", p.Pid)
		cmd := exec.Command(hookBinary, "--log-format", "json", "--log-file", logFile, "prestart")
		cmd.Stdin = strings.NewReader(runcState(id, p.Pid, nil))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		sent := 0
		var werr error
	storm:
		for {
			select {
			case werr = <-done:
				break storm
			default:
			}
			if sent < 2000 {
				if err := unix.Kill(p.Pid, standin.SigRT); err != nil {
					t.Fatal(err)
				}
				sent++
			}
			// About one signal every 5µs: time.Sleep is far coarser.
			for t0 := time.Now(); time.Since(t0) < 5*time.Microsecond; {
			}
		}
		code := exitCode(t, werr)
		line := strings.TrimSpace(stderr.String())
		checkPutBack(t, p.Pid, b)
		rep, k := finishRead(t, p)
		if rep.RT != sent {
			t.Errorf("sent signal %d %d times, the target handled it %d times", standin.SigRT, sent, rep.RT)
		}
		switch {
		case code == 0:
			outcomes["installed"]++
			if l := lastLogLine(t, logFile); fmt.Sprint(l["serial"]) != fmt.Sprint(k.Serial) || k.Name != id {
				t.Errorf("keyring after exec %+v; the hook logged %v", k, l)
			}
		case code == exitFailure && strings.Contains(line, "unsupported target state"):
			outcomes["refused"]++
			if k.Serial != host.Serial {
				t.Errorf("refused, but the keyring changed: %+v (host's %d)", k, host.Serial)
			}
		default:
			t.Errorf("hook exited %d: %q", code, line)
		}
		t.Logf("run %d: %d signals sent and handled; exit %d %s", i, sent, code, line)
	}
	t.Logf("outcomes: %v", outcomes)
}

// SIGTERM reaches the hook while it holds the target, between two of the
// calls it makes the target run. The hook is caught holding the target (its
// SigBlk is all signals) and stopped with SIGSTOP; signals are sent to the
// target, then SIGTERM to the hook, which is let go with SIGCONT. Whether the
// cancellation or the last calls win the race, the target is put back,
// untraced, with every signal delivered. At least one run must end in the
// cancellation path (exit 1, "canceled").
func TestHookSIGTERMWhileHeld(t *testing.T) {
	testutil.RequiresRoot(t)
	outcomes := map[string]int{}
	for i := 0; i < 30 && outcomes["canceled"] < 3; i++ {
		p := standin.Start(t, standin.CReadSignals)
		b := snapshotOf(t, p.Pid)
		logFile := filepath.Join(t.TempDir(), "log")
		cmd := exec.Command(hookBinary, "--log-format", "json", "--log-file", logFile, "--timeout", "30s", "prestart")
		cmd.Stdin = strings.NewReader(runcState(fmt.Sprintf("term-%d", p.Pid), p.Pid, nil))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hook := cmd.Process.Pid
		waited := false
		t.Cleanup(func() {
			// A failure below may leave the hook stopped, holding the target.
			if !waited {
				syscall.Kill(hook, syscall.SIGCONT)
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		caught := false
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if m, err := standin.SigBlk(p.Pid); err == nil && isHeldMask(m) {
				syscall.Kill(hook, syscall.SIGSTOP)
				caught = true
				break
			}
			if st, _ := standin.StatusField(hook, "State"); strings.HasPrefix(st, "Z") || st == "" {
				break
			}
		}
		held := false
		// The hook may finish between the look and the SIGSTOP.
		if caught && waitProcStates(hook, 'T', 'Z') == 'T' {
			m, _ := standin.SigBlk(p.Pid)
			// TracerPid is the tracing thread's id: one of the hook's.
			tracer := standin.TracerPid(p.Pid)
			_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", hook, tracer))
			held = isHeldMask(m) && tracer > 0 && err == nil
		}
		const usr1, rt = 1, 4
		if held {
			unix.Kill(p.Pid, unix.SIGUSR1)
			for j := 0; j < rt; j++ {
				unix.Kill(p.Pid, standin.SigRT)
			}
			if m, _ := standin.StatusField(p.Pid, "ShdPnd"); !hasSignal(m, unix.SIGUSR1) || !hasSignal(m, standin.SigRT) {
				t.Errorf("signals sent while held are not pending: ShdPnd %s", m)
			}
			syscall.Kill(hook, syscall.SIGTERM)
		}
		syscall.Kill(hook, syscall.SIGCONT)
		werr := cmd.Wait()
		waited = true
		code := exitCode(t, werr)
		line := strings.TrimSpace(stderr.String())
		checkPutBack(t, p.Pid, b)
		rep, _ := finishRead(t, p)
		switch {
		case !held:
			outcomes["missed"]++
			if code != 0 {
				t.Errorf("hook exited %d: %s", code, line)
			}
			continue
		case code == exitFailure && strings.Contains(line, "canceled"):
			outcomes["canceled"]++
			checkRefusal(t, hookRun{code: code, stderr: stderr.String()}, "canceled")
			if l := lastLogLine(t, logFile); l["signal"] != "terminated" {
				t.Errorf("log line does not name the signal: %v", l)
			}
		case code == 0:
			outcomes["finished first"]++
		default:
			t.Errorf("hook exited %d: %q", code, line)
		}
		if rep.USR1 != usr1 || rep.RT != rt {
			t.Errorf("signals sent while held: SIGUSR1 handled %d times, signal %d %d times; want %d and %d", rep.USR1, standin.SigRT, rep.RT, usr1, rt)
		}
		t.Logf("run %d: exit %d %s", i, code, line)
	}
	t.Logf("outcomes: %v", outcomes)
	if outcomes["canceled"] == 0 {
		t.Errorf("no run took the cancellation path: %v", outcomes)
	}
}

// hasSignal reports whether sig is set in a /proc/<pid>/status mask.
func hasSignal(mask string, sig unix.Signal) bool {
	v, err := strconv.ParseUint(mask, 16, 64)
	return err == nil && v&(1<<(uint(sig)-1)) != 0
}

// finishRead lets p's read complete with "hello" and checks that it did,
// with SIGUSR2 still blocked: the interrupted call and the signal mask
// were put back.
func finishRead(t *testing.T, p *standin.Process) (standin.Report, standin.Keyring) {
	t.Helper()
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ret != 5 || rep.Data != "hello" || !rep.SigUSR2Blocked {
		t.Errorf("read ended with %+v", rep)
	}
	return rep, k
}
