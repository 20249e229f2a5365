package keyring

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// runLocked runs fn on a fresh locked OS thread that exits afterwards, so
// keyring changes never leak into other tests' threads.
func runLocked(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fn()
	}()
	<-done
}

func uniqueName(t *testing.T) string {
	return fmt.Sprintf("okh-test-%d-%d", unix.Getpid(), time.Now().UnixNano())
}

func TestInstallLocalThread(t *testing.T) {
	for _, req := range []Request{
		{Mode: Named, Name: uniqueName(t), Perm: DefaultPerm},
		{Mode: Anonymous, Perm: DefaultPerm},
		{Mode: Named, Name: uniqueName(t) + "-b", Perm: 0x3f030000},
	} {
		t.Run(req.Mode.String(), func(t *testing.T) {
			runLocked(func() {
				before := standin.Current()
				l, err := NewLocalThread()
				if err != nil {
					t.Error(err)
					return
				}
				defer l.Close()
				res, err := Install(l, req)
				if err != nil {
					t.Errorf("Install: %v", err)
					return
				}
				now := standin.Current()
				want := req.Name
				if req.Mode == Anonymous {
					want = AnonymousName
				}
				if now.Serial != res.Serial || now.Serial == before.Serial || now.Name != want || now.Perm != fmt.Sprintf("%08x", uint32(req.Perm)) {
					t.Errorf("session keyring after Install = %+v (before %+v, result %+v), want a new keyring %q with perm %s", now, before, res, want, req.Perm)
				}
			})
		})
	}
}

// A keyring that others may search is somebody else's: joining it by name
// must be refused, not shared.
func TestInstallRefusesExistingKeyring(t *testing.T) {
	name := uniqueName(t)
	holding := make(chan int32)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits
		id, err := unix.KeyctlJoinSessionKeyring(name)
		if err != nil {
			t.Error(err)
			close(holding)
			return
		}
		if err := unix.KeyctlSetperm(id, 0x3f1b0000); err != nil {
			t.Error(err)
		}
		holding <- int32(id)
		<-release
	}()
	victim, ok := <-holding
	defer close(release)
	if !ok {
		return
	}
	runLocked(func() {
		l, err := NewLocalThread()
		if err != nil {
			t.Error(err)
			return
		}
		defer l.Close()
		res, err := Install(l, Request{Mode: Named, Name: name, Perm: DefaultPerm})
		if !errors.Is(err, ErrNotFresh) {
			t.Errorf("Install over an existing searchable keyring %d: got %+v, %v; want ErrNotFresh", victim, res, err)
		}
	})
}

func TestInstallRejectsBadRequests(t *testing.T) {
	for _, req := range []Request{
		{Mode: Named, Name: "", Perm: DefaultPerm},
		{Mode: Named, Name: ".dot", Perm: DefaultPerm},
		{Mode: Named, Name: "a\x00b", Perm: DefaultPerm},
		{Mode: Anonymous, Perm: 0x3f1b0000},
		{Mode: Anonymous, Perm: 0x3f010008},
		{Mode: Anonymous, Perm: 0x01010000},
		{Mode: Mode(7), Perm: DefaultPerm},
	} {
		called := false
		_, err := Install(failingSyscaller{&called}, req)
		if err == nil || called {
			t.Errorf("Install(%+v) = %v, syscalls made: %v; want an error before any syscall", req, err, called)
		}
	}
}

type failingSyscaller struct{ called *bool }

func (f failingSyscaller) Syscall(uintptr, ...uintptr) (uintptr, error) {
	*f.called = true
	return 0, unix.ENOSYS
}
func (f failingSyscaller) Scratch() (uintptr, error)         { *f.called = true; return 0, unix.ENOSYS }
func (f failingSyscaller) WriteMemory(uintptr, []byte) error { *f.called = true; return unix.ENOSYS }
func (f failingSyscaller) ReadMemory(uintptr, []byte) error  { *f.called = true; return unix.ENOSYS }

// TestInjectStandins is the engine end to end: each stand-in is stopped in
// its blocking call, given a keyring, restored and released; the call must
// then complete normally and the program it execs must run with the new
// keyring.
func TestInjectStandins(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	for _, kind := range standin.All {
		for _, mode := range []Mode{Named, Anonymous} {
			t.Run(fmt.Sprintf("%s/%s", kind, mode), func(t *testing.T) {
				p := standin.Start(t, kind)
				maskBefore, err := standin.SigBlk(p.Pid)
				if err != nil {
					t.Fatal(err)
				}
				req := Request{Mode: mode, Name: fmt.Sprintf("okh-%s-%d", kind, p.Pid), Perm: DefaultPerm}
				var res Result
				tm, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
					var err error
					res, err = Install(s, req)
					return err
				})
				if err != nil {
					t.Fatalf("Inject: %v (target: %s)", err, standin.State(p.Pid))
				}
				t.Logf("%s: serial %d, enter %v, work %v, leave %v", kind, res.Serial, tm.Enter, tm.Work, tm.Leave)
				if tr := standin.TracerPid(p.Pid); tr != 0 {
					t.Errorf("target still traced by %d after Inject", tr)
				}
				if got, _ := standin.SigBlk(p.Pid); got != maskBefore {
					t.Errorf("signal mask after Inject %s, before %s", got, maskBefore)
				}
				if err := standin.WaitBlocked(p.Pid, map[standin.Kind]int{standin.CNanosleep: unix.SYS_NANOSLEEP, standin.CRead: unix.SYS_READ, standin.GoRead: unix.SYS_READ}[kind]|orRecv(kind), time.Second); err != nil && kind != standin.CNanosleep {
					t.Errorf("target not back in its call: %v", err)
				}
				if err := p.Release("hello"); err != nil {
					t.Fatal(err)
				}
				rep, k, err := p.Finish(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				checkReport(t, kind, rep)
				want := req.Name
				if mode == Anonymous {
					want = AnonymousName
				}
				if k.Err != "" || k.Serial != res.Serial || k.Serial == host.Serial || k.Name != want || k.Perm != "3f010000" || k.Type != "keyring" {
					t.Errorf("after execve the session keyring is %+v; want serial %d (not the host's %d), name %q, perm 3f010000", k, res.Serial, host.Serial, want)
				}
			})
		}
	}
}

func orRecv(kind standin.Kind) int {
	if kind == standin.GoRecvfrom || kind == standin.CRecvfrom {
		return unix.SYS_RECVFROM
	}
	return 0
}

func checkReport(t *testing.T, kind standin.Kind, rep standin.Report) {
	t.Helper()
	if !rep.SigUSR2Blocked {
		t.Errorf("%s: SIGUSR2 no longer blocked after the call: %+v", kind, rep)
	}
	if kind == standin.CNanosleep {
		if rep.Ret != 0 || rep.Errno != 0 || rep.ElapsedMS < 600 {
			t.Errorf("nanosleep(600ms) ended with %+v; want 0 after at least 600ms", rep)
		}
		return
	}
	if rep.Ret != 5 || rep.Errno != 0 || rep.Data != "hello" {
		t.Errorf("%s ended with %+v; want 5 bytes \"hello\"", rep.Call, rep)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
