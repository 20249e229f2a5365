package keyring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// archRegs is the register set the engine saves, edits and restores.
type archRegs = amd64Regs

// unix.PtraceRegs on amd64 is struct user_regs_struct, like amd64Regs.
var _ [unsafe.Sizeof(unix.PtraceRegs{}) - unsafe.Sizeof(amd64Regs{})]struct{}
var _ [unsafe.Sizeof(amd64Regs{}) - unsafe.Sizeof(unix.PtraceRegs{})]struct{}

func getRegs(tid int, r *archRegs) error {
	if err := unix.PtraceGetRegs(tid, (*unix.PtraceRegs)(unsafe.Pointer(r))); err != nil {
		return syscallErr("ptrace(PTRACE_GETREGS)", tid, err)
	}
	return nil
}

func setRegs(tid int, r *archRegs) error {
	if err := unix.PtraceSetRegs(tid, (*unix.PtraceRegs)(unsafe.Pointer(r))); err != nil {
		return syscallErr("ptrace(PTRACE_SETREGS)", tid, err)
	}
	return nil
}

// atSyscallEntry runs at the syscall-entry stop of an injected call. On
// x86_64 the kernel took the number from rax; nothing to fix.
func atSyscallEntry(tid int, nr uintptr) error { return nil }

// singleStepCalls: a PTRACE_SINGLESTEP over "syscall" runs the call and
// stops once, right after it (stepOverSyscall).
const singleStepCalls = true

// syscallInsnLen is the length of the syscall instruction.
const syscallInsnLen = amd64SyscallLen

// stepPC is the instruction pointer of a stop.
func stepPC(r *archRegs) uintptr { return uintptr(r.Rip) }
