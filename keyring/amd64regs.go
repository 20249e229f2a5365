package keyring

import "golang.org/x/sys/unix"

// amd64Regs mirrors the x86_64 struct user_regs_struct (PTRACE_GETREGS).
// It is defined on every architecture so the register rules below are unit
// tested wherever the tests run.
type amd64Regs struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8  uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip, Cs       uint64
	Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs, Gs uint64
}

const (
	amd64SyscallLen     = 2   // "syscall" is 0f 05
	amd64RestartSyscall = 219 // __NR_restart_syscall on x86_64
	amd64UserCS         = 0x33
)

var amd64SyscallInsn = []byte{0x0f, 0x05}

// syscallSite returns where the syscall instruction the thread is blocked in
// should be: a thread stopped inside a system call has rip just past it and
// the call's number in orig_rax.
func (r *amd64Regs) syscallSite() (addr uintptr, insn []byte, err error) {
	if r.Cs != amd64UserCS {
		return 0, nil, errorf("thread runs in a 32-bit or unknown code segment (cs %#x); only 64-bit processes are supported", r.Cs)
	}
	if int64(r.OrigRax) < 0 {
		return 0, nil, notInSyscallf("orig_rax %d, rip %#x; refusing to guess where a syscall instruction is", int64(r.OrigRax), r.Rip)
	}
	if r.Rip < amd64SyscallLen {
		return 0, nil, errorf("rip %#x cannot follow a syscall instruction", r.Rip)
	}
	return uintptr(r.Rip - amd64SyscallLen), amd64SyscallInsn, nil
}

// call returns registers that run syscall nr at site: everything else as
// saved, so nothing the kernel reads from other registers changes.
// orig_rax = -1 keeps the kernel from restarting the interrupted call when
// the thread resumes out of its ptrace stop.
func (r amd64Regs) call(site, nr uintptr, args *[6]uintptr) amd64Regs {
	r.Rip = uint64(site)
	r.Rax = uint64(nr)
	r.OrigRax = ^uint64(0)
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = uint64(args[0]), uint64(args[1]), uint64(args[2]), uint64(args[3]), uint64(args[4]), uint64(args[5])
	return r
}

// result decodes the return value at the syscall-exit stop of a call made
// at site.
func (r *amd64Regs) result(site uintptr) (uintptr, error) {
	if r.Rip != uint64(site)+amd64SyscallLen {
		return 0, errorf("syscall-exit stop at rip %#x, want %#x", r.Rip, uint64(site)+amd64SyscallLen)
	}
	return decodeReturn(r.Rax)
}

// restartForm returns the saved registers rewritten the way the kernel
// would have on its own when the thread resumed: an interrupted call is set
// up to run again (or, for ERESTART_RESTARTBLOCK, to continue through
// restart_syscall), and orig_rax = -1 so the kernel does not apply the
// restart a second time. Restoring the raw registers instead would let the
// call return -ERESTARTSYS to user space when the thread is resumed with
// PTRACE_CONT rather than a detach.
func (r amd64Regs) restartForm() amd64Regs {
	if int64(r.OrigRax) >= 0 {
		switch int64(r.Rax) {
		case -errRestartSys, -errRestartNoIntr, -errRestartNoHand:
			r.Rax = r.OrigRax
			r.Rip -= amd64SyscallLen
		case -errRestartRestartBlock:
			r.Rax = amd64RestartSyscall
			r.Rip -= amd64SyscallLen
		}
	}
	r.OrigRax = ^uint64(0)
	return r
}

// Kernel-internal restart codes (include/linux/errno.h).
const (
	errRestartSys          = 512
	errRestartNoIntr       = 513
	errRestartNoHand       = 514
	errRestartRestartBlock = 516
)

// decodeReturn splits a raw syscall return into a value and an errno.
func decodeReturn(v uint64) (uintptr, error) {
	if s := int64(v); s < 0 && s >= -4095 {
		return 0, unix.Errno(-s)
	}
	return uintptr(v), nil
}
