package keyring

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Faults while the engine holds the target (faults_test.go covers those
// before it holds it, and cancellation). Each test checks the target
// afterwards the same way: untraced, its signal mask and the registers of
// its blocked call (/proc/<pid>/syscall: number, arguments, stack and
// instruction pointers) as they were, and its read completing with the data.

// snapshot is what must be the same after an injection as before.
type snapshot struct {
	mask    string // SigBlk
	syscall string // /proc/<pid>/syscall
}

func takeSnapshot(t *testing.T, p *standin.Process) snapshot {
	t.Helper()
	mask, err := standin.SigBlk(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{mask: mask, syscall: standin.SyscallLine(p.Pid)}
}

// checkRestored waits until the target is blocked in its read again and
// compares it with before.
func checkRestored(t *testing.T, p *standin.Process, before snapshot) {
	t.Helper()
	waitUntraced(t, p.Pid)
	if err := standin.WaitBlocked(p.Pid, unix.SYS_READ, 5*time.Second); err != nil {
		t.Fatalf("target not back in its read: %v", err)
	}
	after := takeSnapshot(t, p)
	if after != before {
		t.Errorf("target not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}

// sigBit reports whether sig is set in a /proc/<pid>/status mask (hex).
func sigBit(mask string, sig unix.Signal) bool {
	v, err := strconv.ParseUint(mask, 16, 64)
	return err == nil && v&(1<<(uint(sig)-1)) != 0
}

// Signals sent to the target while the engine holds it, process-directed
// and thread-directed, standard and real-time, stay pending while every
// signal is blocked, and are all delivered once the target runs again:
// none lost, none delivered on borrowed registers.
func TestInjectSignalsWhileHeldAreDelivered(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CReadSignals)
	before := takeSnapshot(t, p)
	const rtProcess, rtThread = 3, 2
	var res Result
	var shd, pnd string
	_, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
		if err := unix.Kill(p.Pid, unix.SIGUSR1); err != nil {
			return err
		}
		for i := 0; i < rtProcess; i++ {
			if err := unix.Kill(p.Pid, standin.SigRT); err != nil {
				return err
			}
		}
		for i := 0; i < rtThread; i++ {
			if err := unix.Tgkill(p.Pid, p.Pid, standin.SigRT); err != nil {
				return err
			}
		}
		shd, _ = standin.StatusField(p.Pid, "ShdPnd")
		pnd, _ = standin.StatusField(p.Pid, "SigPnd")
		var err error
		res, err = Install(s, Request{Mode: Named, Name: fmt.Sprintf("okh-sig-%d", p.Pid), Perm: DefaultPerm})
		return err
	})
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	if !sigBit(shd, unix.SIGUSR1) || !sigBit(shd, standin.SigRT) || !sigBit(pnd, standin.SigRT) {
		t.Errorf("signals not pending while held: ShdPnd %s SigPnd %s", shd, pnd)
	}
	checkRestored(t, p, before)
	for _, f := range []string{"ShdPnd", "SigPnd"} {
		if v, _ := standin.StatusField(p.Pid, f); sigBit(v, unix.SIGUSR1) || sigBit(v, standin.SigRT) {
			t.Errorf("%s %s: signals still pending after the target ran", f, v)
		}
	}
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, p.Kind, rep)
	if rep.USR1 != 1 || rep.RT != rtProcess+rtThread {
		t.Errorf("handled SIGUSR1 %d times and signal %d %d times; want 1 and %d", rep.USR1, standin.SigRT, rep.RT, rtProcess+rtThread)
	}
	if k.Serial != res.Serial {
		t.Errorf("keyring after exec %+v, want serial %d", k, res.Serial)
	}
}

// SIGSTOP cannot be blocked: sent while the engine holds the target, it
// must not be lost either. The target is left stopped after the detach,
// and SIGCONT lets it finish its read with the new keyring.
func TestInjectSIGSTOPWhileHeld(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	before := takeSnapshot(t, p)
	var res Result
	_, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
		if _, err := s.Scratch(); err != nil {
			return err
		}
		if err := unix.Kill(p.Pid, unix.SIGSTOP); err != nil {
			return err
		}
		var err error
		res, err = Install(s, Request{Mode: Anonymous, Perm: DefaultPerm})
		return err
	})
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	waitUntraced(t, p.Pid)
	waitState(t, p.Pid, 'T')
	time.Sleep(20 * time.Millisecond)
	if st, _ := ReadProcStat(p.Pid); st.State != 'T' {
		t.Fatalf("the SIGSTOP sent while held was lost: %s", standin.State(p.Pid))
	}
	if err := unix.Kill(p.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	checkRestored(t, p, before)
	finishUnchanged(t, p, res.Serial)
}

// A target SIGSTOPped before the hook comes is given its keyring, left
// stopped and untraced, with its registers intact; SIGCONT then resumes
// the read, which completes with the data.
func TestInjectStoppedTargetResumes(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.GoRead)
	before := takeSnapshot(t, p)
	if err := unix.Kill(p.Pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.Pid, 'T')
	res, err := installOnce(p.Pid, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Inject on a stopped target: %v", err)
	}
	waitUntraced(t, p.Pid)
	time.Sleep(20 * time.Millisecond)
	if st, _ := ReadProcStat(p.Pid); st.State != 'T' {
		t.Errorf("target not left stopped: %s", standin.State(p.Pid))
	}
	if err := unix.Kill(p.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	checkRestored(t, p, before)
	finishUnchanged(t, p, res.Serial)
}

// The remote mmap of the scratch page fails (RLIMIT_AS at the target's
// current size): the error names the call and ENOMEM, the target is put
// back as it was and completes its read. The first join had already
// happened: the target keeps that fresh anonymous keyring, not the host's.
func TestInjectMmapFails(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	before := takeSnapshot(t, p)
	restore := standin.LimitAddressSpace(t, p.Pid)
	res, err := installOnce(p.Pid, Options{Timeout: 5 * time.Second})
	if !errors.Is(err, unix.ENOMEM) || !strings.Contains(err.Error(), "mmap") {
		t.Fatalf("Inject with RLIMIT_AS exhausted: %v; want ENOMEM from mmap", err)
	}
	t.Logf("error: %v", err)
	if errors.Is(err, ErrNotRestored) {
		t.Errorf("error says the target was not restored: %v", err)
	}
	checkRestored(t, p, before)
	restore()
	host := standin.Current()
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, p.Kind, rep)
	if k.Serial == host.Serial || k.Serial != res.Anonymous || k.Name != AnonymousName {
		t.Errorf("keyring after exec %+v; want the anonymous keyring %d joined before mmap failed (host's is %d)", k, res.Anonymous, host.Serial)
	}
}

// The target is frozen by the cgroup freezer in the middle of an injected
// call: the call never comes back, so there is no stop at which to put
// the registers back. Left alone, the thawed target would run on with the
// injected call's registers and every signal blocked (its read returned
// the new keyring's serial); the engine kills it instead, and says so.
func TestInjectFrozenMidCallIsKilled(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	var thaw func()
	start := time.Now()
	_, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
		if _, err := s.Scratch(); err != nil {
			return err
		}
		thaw = standin.Freeze(t, p.Pid)
		_, err := Install(s, Request{Mode: Anonymous, Perm: DefaultPerm})
		return err
	})
	if !errors.Is(err, ErrNotRestored) || !strings.Contains(err.Error(), "killed it") {
		t.Fatalf("Inject with the target frozen mid-call: %v; want ErrNotRestored saying it was killed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up", d)
	}
	waitUntraced(t, p.Pid)
	thaw()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(p.Pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("target ended with status %#x, want killed by SIGKILL", uint32(ws))
	}
}
