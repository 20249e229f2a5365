package keyring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// archRegs is the register set the engine saves, edits and restores.
type archRegs = arm64Regs

// unix.PtraceRegsArm64 is struct user_pt_regs, like arm64Regs.
var _ [unsafe.Sizeof(unix.PtraceRegsArm64{}) - unsafe.Sizeof(arm64Regs{})]struct{}
var _ [unsafe.Sizeof(arm64Regs{}) - unsafe.Sizeof(unix.PtraceRegsArm64{})]struct{}

// arm64NoSyscall is the kernel's NO_SYSCALL value of pt_regs.syscallno.
const arm64NoSyscall = -1

// getRegs reads NT_PRSTATUS. Arm64 has no PTRACE_GETREGS.
//
// The length the kernel writes back is checked: for an AArch32 (compat)
// thread NT_PRSTATUS is the 72-byte compat set, which would otherwise fill
// only the first registers and leave Pc and Pstate as they were (x/sys's
// PtraceGetRegSetArm64 drops that length, hence the raw request).
//
// At a syscall stop the kernel shows x7 as 0 (entry) or 1 (exit) and
// discards writes to it, restoring the real value on resume: registers to be
// restored must be read at the interrupt stop, as the engine does.
func getRegs(tid int, r *archRegs) error {
	const size = unsafe.Sizeof(*r)
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(r))}
	iov.SetLen(int(size))
	// The pointer conversion is in the call expression of the assembly
	// Syscall6, so iov and *r stay valid and in place during the call.
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), unix.NT_PRSTATUS, uintptr(unsafe.Pointer(&iov)), 0, 0)
	if e != 0 {
		return syscallErr("ptrace(PTRACE_GETREGSET, NT_PRSTATUS)", tid, e)
	}
	if iov.Len != uint64(size) {
		return errorf("thread %d has a %d-byte NT_PRSTATUS register set, not the %d bytes of a 64-bit task; only 64-bit (AArch64) processes are supported", tid, iov.Len, size)
	}
	return nil
}

// setRegs writes NT_PRSTATUS and then forgets the system call the thread is
// stopped in (syscallno = NO_SYSCALL), the arm64 counterpart of writing
// orig_rax = -1 on x86_64. Without it, after an injected call's exit stop
// syscallno still names that call, and a do_signal on the way back to user
// space would take x0 for a return value and, should it equal a restart code
// (the interrupted call's first argument is restored into x0), rewind pc by
// one instruction and restart from the wrong place. The engine writes
// registers only at the interrupt stop, where the call is already
// forgotten, and at syscall-exit stops; never call it at an entry stop, it
// would skip the call.
func setRegs(tid int, r *archRegs) error {
	if err := unix.PtraceSetRegSetArm64(tid, unix.NT_PRSTATUS, (*unix.PtraceRegsArm64)(unsafe.Pointer(r))); err != nil {
		return syscallErr("ptrace(PTRACE_SETREGSET, NT_PRSTATUS)", tid, err)
	}
	if err := setSyscallNo(tid, arm64NoSyscall); err != nil {
		return syscallErr("ptrace(PTRACE_SETREGSET, NT_ARM_SYSTEM_CALL, NO_SYSCALL)", tid, err)
	}
	return nil
}

// atSyscallEntry runs at the syscall-entry stop of an injected call and sets
// the number the kernel will run. x8 cannot be trusted here: when the thread
// first resumes out of the interrupt stop with pc at the rewound svc and the
// interrupted call had returned -ERESTART_RESTARTBLOCK, the tail of
// do_signal (setup_restart_syscall) overwrites x8 with __NR_restart_syscall
// before the svc runs. The kernel takes the number from syscallno, which the
// tracer can set at the entry stop; seccomp and audit see the new number too.
func atSyscallEntry(tid int, nr uintptr) error {
	if err := setSyscallNo(tid, int32(nr)); err != nil {
		return syscallErr("ptrace(PTRACE_SETREGSET, NT_ARM_SYSTEM_CALL)", tid, err)
	}
	return nil
}

// setSyscallNo writes the NT_ARM_SYSTEM_CALL regset, an int.
func setSyscallNo(tid int, nr int32) error {
	iov := unix.Iovec{Base: (*byte)(unsafe.Pointer(&nr))}
	iov.SetLen(int(unsafe.Sizeof(nr)))
	// The pointer conversion is in the call expression of the assembly
	// Syscall6, so iov and nr stay valid and in place during the call.
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(tid), unix.NT_ARM_SYSTEM_CALL, uintptr(unsafe.Pointer(&iov)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// singleStepCalls: arm64 keeps a syscall-entry and a syscall-exit stop per
// call (the entry stop sets NT_ARM_SYSTEM_CALL).
const singleStepCalls = false

// syscallInsnLen is the length of the syscall instruction.
const syscallInsnLen = arm64SyscallLen

// stepPC is the program counter of a stop.
func stepPC(r *archRegs) uintptr { return uintptr(r.Pc) }
