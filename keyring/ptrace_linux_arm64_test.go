package keyring

import (
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// These run only on arm64 (hack/test-arm64.sh runs them on a real arm64
// kernel under qemu). They check the kernel behaviour arm64regs.go and
// ptrace_linux_arm64.go rely on, which the amd64 unit tests can only
// assume.

// arm64Stop is what the tracer sees at the PTRACE_INTERRUPT stop of a
// thread blocked in a system call.
type arm64Stop struct {
	regs      arm64Regs
	syscallNo int32  // NT_ARM_SYSTEM_CALL
	insn      uint32 // the instruction at pc
}

// seizeAndLook seizes pid, interrupts it, reads its registers, syscallno
// and the instruction at pc, and detaches without changing anything.
func seizeAndLook(t *testing.T, pid int) (st arm64Stop, ok bool) {
	t.Helper()
	runLocked(func() {
		if err := ptrace(unix.PTRACE_SEIZE, pid, 0, unix.PTRACE_O_TRACESYSGOOD); err != nil {
			t.Errorf("PTRACE_SEIZE: %v", err)
			return
		}
		if err := ptrace(unix.PTRACE_INTERRUPT, pid, 0, 0); err != nil {
			t.Errorf("PTRACE_INTERRUPT: %v", err)
			return
		}
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				t.Errorf("wait4: %v", err)
				return
			}
			break
		}
		if !ws.Stopped() || ptraceEvent(ws) != unix.PTRACE_EVENT_STOP {
			t.Errorf("first stop after PTRACE_INTERRUPT: %s, want PTRACE_EVENT_STOP", describeStatus(ws))
			return
		}
		// Detach at this stop whatever happens below: nothing was changed.
		defer func() {
			if err := ptrace(unix.PTRACE_DETACH, pid, 0, 0); err != nil {
				t.Errorf("PTRACE_DETACH: %v", err)
			}
		}()
		if err := getRegs(pid, &st.regs); err != nil {
			t.Error(err)
			return
		}
		var err error
		if st.syscallNo, err = getSyscallNo(pid); err != nil {
			t.Errorf("PTRACE_GETREGSET NT_ARM_SYSTEM_CALL: %v", err)
			return
		}
		b := make([]byte, 4)
		local := []unix.Iovec{{Base: &b[0]}}
		local[0].SetLen(4)
		if _, err := unix.ProcessVMReadv(pid, local, []unix.RemoteIovec{{Base: uintptr(st.regs.Pc), Len: 4}}, 0); err != nil {
			t.Errorf("reading the instruction at pc %#x: %v", st.regs.Pc, err)
			return
		}
		st.insn = binary.LittleEndian.Uint32(b)
		ok = true
	})
	return st, ok
}

func getSyscallNo(tid int) (int32, error) {
	var nr int32
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&nr))}
	iov.SetLen(int(unsafe.Sizeof(nr)))
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), unix.NT_ARM_SYSTEM_CALL, uintptr(unsafe.Pointer(&iov)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return nr, nil
}

// TestArm64InterruptStop: at the interrupt stop of a thread blocked in
// read, recvfrom or nanosleep, pc is at the svc #0 (already rewound), x8
// holds the interrupted call's number, x0 its first argument again (not a
// restart code), and the call is forgotten (syscallno = NO_SYSCALL), so
// restartForm can be the identity. A detach at that stop then lets the call
// complete normally.
func TestArm64InterruptStop(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, kind := range append(standin.All, standin.CReadBump) {
		t.Run(string(kind), func(t *testing.T) {
			nr := map[standin.Kind]int{
				standin.GoRead: unix.SYS_READ, standin.CRead: unix.SYS_READ, standin.CReadBump: unix.SYS_READ,
				standin.GoRecvfrom: unix.SYS_RECVFROM, standin.CRecvfrom: unix.SYS_RECVFROM,
				standin.CNanosleep: unix.SYS_NANOSLEEP,
			}[kind]
			p := standin.Start(t, kind)
			st, ok := seizeAndLook(t, p.Pid)
			if !ok {
				return
			}
			t.Logf("%s: pc %#x insn %#08x x0 %#x x8 %d syscallno %d pstate %#x", kind, st.regs.Pc, st.insn, st.regs.Regs[0], st.regs.Regs[8], st.syscallNo, st.regs.Pstate)
			if st.insn != 0xd4000001 {
				t.Errorf("instruction at pc %#x is %#08x, want svc #0 (0xd4000001)", st.regs.Pc, st.insn)
			}
			if _, _, err := st.regs.syscallSite(); err != nil {
				t.Errorf("syscallSite: %v", err)
			}
			if st.regs.Regs[8] != uint64(nr) {
				t.Errorf("x8 = %d, want the interrupted call's number %d", st.regs.Regs[8], nr)
			}
			if kind != standin.CNanosleep && st.regs.Regs[0] != 3 {
				t.Errorf("x0 = %#x, want the call's first argument, fd 3", st.regs.Regs[0])
			}
			if x0 := int64(st.regs.Regs[0]); x0 >= -4095 && x0 < 0 {
				t.Errorf("x0 = %d: a return code, not the restored first argument", x0)
			}
			if st.syscallNo != arm64NoSyscall {
				t.Errorf("NT_ARM_SYSTEM_CALL = %d at the interrupt stop, want NO_SYSCALL (%d)", st.syscallNo, arm64NoSyscall)
			}
			waitUntraced(t, p.Pid)
			if kind != standin.CNanosleep {
				if err := standin.WaitBlocked(p.Pid, nr, 5*time.Second); err != nil {
					t.Errorf("not back in its call after the detach: %v", err)
				}
			}
			if err := p.Release("hello"); err != nil {
				t.Fatal(err)
			}
			rep, k, err := p.Finish(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, kind, rep)
			if host := standin.Current(); k.Serial != host.Serial {
				t.Errorf("keyring after exec %+v, want the untouched %d", k, host.Serial)
			}
		})
	}
}

// TestArm64RestartBlockMidSleep injects into a nanosleep 300ms into its
// 600ms (the call returned ERESTART_RESTARTBLOCK). arm64regs.go restores
// the registers as the interrupt stop showed them, so the call runs again
// with its original timeout, where x86_64 continues through
// restart_syscall with the time left. Either way it must complete
// normally (0, at least 600ms in all) and not be cut short.
func TestArm64RestartBlockMidSleep(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CNanosleep)
	time.Sleep(300 * time.Millisecond)
	before := time.Now()
	if _, err := installOnce(p.Pid, Options{Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	rep, _, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Since(before)
	t.Logf("nanosleep(600ms): %+v, ended %v after the injection", rep, after)
	checkReport(t, p.Kind, rep)
	if after < 250*time.Millisecond {
		t.Errorf("nanosleep ended %v after an injection 300ms into a 600ms sleep: cut short", after)
	}
}
