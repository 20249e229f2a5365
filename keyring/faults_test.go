package keyring

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// These tests break the engine's assumptions on purpose; in every case the
// target must be left running as it was, untraced.

func installOnce(pid int, opts Options) (Result, error) {
	var res Result
	_, err := Inject(pid, opts, func(s Syscaller) error {
		var err error
		res, err = Install(s, Request{Mode: Anonymous, Perm: DefaultPerm})
		return err
	})
	return res, err
}

// waitUntraced allows for the kernel detaching after a tracer thread exits.
func waitUntraced(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if standin.TracerPid(pid) == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Errorf("pid %d still traced: %s", pid, standin.State(pid))
}

func finishUnchanged(t *testing.T, p *standin.Process, want int32) {
	t.Helper()
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, p.Kind, rep)
	if k.Serial != want {
		t.Errorf("keyring after exec %+v, want serial %d", k, want)
	}
}

// A target stopped by SIGSTOP before the hook arrives gets its keyring and
// is left stopped, as it was; SIGCONT then lets it carry on.
func TestInjectStoppedTarget(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	if err := unix.Kill(p.Pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.Pid, 'T')
	res, err := installOnce(p.Pid, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Inject on a stopped target: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	waitState(t, p.Pid, 'T')
	waitUntraced(t, p.Pid)
	if err := unix.Kill(p.Pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	finishUnchanged(t, p, res.Serial)
}

// A target that never stops (frozen by the cgroup freezer) makes the
// engine give up at the deadline without having changed anything.
func TestInjectTimeoutFrozenTarget(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	thaw := standin.Freeze(t, p.Pid)
	start := time.Now()
	_, err := installOnce(p.Pid, Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Inject on a frozen target: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to give up after a 200ms timeout", d)
	}
	waitUntraced(t, p.Pid)
	thaw()
	finishUnchanged(t, p, standin.Current().Serial)
}

// Cancel (the hook's SIGTERM) while waiting for the target.
func TestInjectCanceled(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.GoRead)
	thaw := standin.Freeze(t, p.Pid)
	cancel := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(cancel) })
	_, err := installOnce(p.Pid, Options{Timeout: 10 * time.Second, Cancel: cancel})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("Inject canceled: %v, want ErrCanceled", err)
	}
	waitUntraced(t, p.Pid)
	thaw()
	finishUnchanged(t, p, standin.Current().Serial)
}

// Cancel between two remote calls: the engine must restore and detach.
func TestInjectCanceledMidway(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRecvfrom)
	cancel := make(chan struct{})
	_, err := Inject(p.Pid, Options{Timeout: 5 * time.Second, Cancel: cancel}, func(s Syscaller) error {
		if _, err := s.Scratch(); err != nil {
			return err
		}
		close(cancel)
		time.Sleep(10 * time.Millisecond)
		_, err := Install(s, Request{Mode: Anonymous, Perm: DefaultPerm})
		return err
	})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("got %v, want ErrCanceled", err)
	}
	waitUntraced(t, p.Pid)
	finishUnchanged(t, p, standin.Current().Serial)
}

// The target is SIGKILLed between two remote calls.
func TestInjectTargetKilled(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.GoRead)
	start := time.Now()
	_, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
		if _, err := s.Scratch(); err != nil {
			return err
		}
		unix.Kill(p.Pid, unix.SIGKILL)
		_, err := Install(s, Request{Mode: Anonymous, Perm: DefaultPerm})
		return err
	})
	if !errors.Is(err, ErrTargetExited) {
		t.Fatalf("got %v, want ErrTargetExited", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to notice", d)
	}
}

// A target already traced by someone else is refused, untouched.
func TestInjectAlreadyTraced(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CRead)
	seized := make(chan error)
	release := make(chan struct{})
	// Not the main thread: Go parks a locked main thread instead of letting
	// it exit, and the target would stay traced.
	onTracerThread(func() bool {
		seized <- ptrace(unix.PTRACE_SEIZE, p.Pid, 0, 0)
		<-release
		return false // never unlocked: the thread's exit detaches
	})
	if err := <-seized; err != nil {
		t.Fatal(err)
	}
	_, err := installOnce(p.Pid, Options{Timeout: time.Second})
	close(release)
	if !errors.Is(err, unix.EPERM) || !regexpMatch(`already traced by pid \d+`, err.Error()) {
		t.Fatalf("got %v, want EPERM naming the tracer", err)
	}
	waitUntraced(t, p.Pid)
	finishUnchanged(t, p, standin.Current().Serial)
}

// A thread that is not inside a system call has no syscall instruction
// behind rip to borrow: refuse rather than guess.
func TestInjectRefusesBusyThread(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.StartSpinner(t)
	_, err := installOnce(p, Options{Timeout: time.Second})
	if !errors.Is(err, ErrUnsupportedTarget) {
		t.Fatalf("got %v, want ErrUnsupportedTarget", err)
	}
	waitUntraced(t, p)
	if st, _ := ReadProcStat(p); st.State != 'R' {
		t.Errorf("spinner not running after refusal: %s", standin.State(p))
	}
}

func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if st, err := ReadProcStat(pid); err == nil && st.State == want {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pid %d never reached state %c: %s", pid, want, standin.State(pid))
}
