package keyring

// arm64Regs mirrors the arm64 struct user_pt_regs, the NT_PRSTATUS register
// set read and written with PTRACE_GETREGSET/PTRACE_SETREGSET. Like
// amd64Regs it is defined on every architecture so the register rules below
// are unit tested wherever the tests run.
//
// The kernel's syscallno (the arm64 counterpart of orig_rax) is not part of
// this set: it is the separate NT_ARM_SYSTEM_CALL regset, handled by the
// arm64 glue (setRegs, atSyscallEntry).
type arm64Regs struct {
	Regs   [31]uint64 // x0..x30
	Sp     uint64
	Pc     uint64
	Pstate uint64
}

const (
	arm64SyscallLen = 4 // "svc #0" is one A64 instruction

	// pstate bits (arch/arm64/include/uapi/asm/ptrace.h).
	arm64PsrModeMask = 0x0f // PSR_MODE_MASK
	arm64PsrModeEL0t = 0x00 // PSR_MODE_EL0t: user mode
	arm64PsrMode32   = 0x10 // PSR_MODE32_BIT: AArch32 (compat) task
)

// arm64SyscallInsn is "svc #0" (0xd4000001), little-endian.
var arm64SyscallInsn = []byte{0x01, 0x00, 0x00, 0xd4}

// syscallSite returns where the syscall instruction should be. On arm64 a
// thread stopped by PTRACE_INTERRUPT while blocked in a system call stops
// inside get_signal, called from do_signal, which has already rewound pc to
// the svc and put orig_x0 back in x0 when the call returned
// -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND/-ERESTART_RESTARTBLOCK, and
// has forgotten the call (syscallno = NO_SYSCALL). The restart code is gone,
// so nothing tells whether the thread was in a system call: the site is pc
// itself, and the engine refuses unless pc really holds an svc.
func (r *arm64Regs) syscallSite() (addr uintptr, insn []byte, err error) {
	if r.Pstate&arm64PsrMode32 != 0 {
		return 0, nil, errorf("thread runs in AArch32 (compat) state (pstate %#x); only 64-bit processes are supported", r.Pstate)
	}
	if r.Pstate&arm64PsrModeMask != arm64PsrModeEL0t {
		return 0, nil, errorf("thread is not in user mode EL0t (pstate %#x)", r.Pstate)
	}
	if r.Pc%arm64SyscallLen != 0 {
		return 0, nil, errorf("pc %#x is not 4-byte aligned; it cannot hold an svc instruction", r.Pc)
	}
	return uintptr(r.Pc), arm64SyscallInsn, nil
}

// call returns registers that run syscall nr at site: number in x8,
// arguments in x0..x5, everything else as saved. x8 cannot be trusted to
// reach the kernel unchanged on the first resume after the interrupt stop
// (do_signal may replace it with __NR_restart_syscall), so atSyscallEntry
// sets the number again at the entry stop.
func (r arm64Regs) call(site, nr uintptr, args *[6]uintptr) arm64Regs {
	r.Pc = uint64(site)
	r.Regs[8] = uint64(nr)
	for i, a := range args {
		r.Regs[i] = uint64(a)
	}
	return r
}

// result decodes the return value, in x0, at the syscall-exit stop of a call
// made at site; the exception return address is then just past the svc.
func (r *arm64Regs) result(site uintptr) (uintptr, error) {
	if r.Pc != uint64(site)+arm64SyscallLen {
		return 0, errorf("syscall-exit stop at pc %#x, want %#x", r.Pc, uint64(site)+arm64SyscallLen)
	}
	return decodeReturn(r.Regs[0])
}

// restartForm returns the saved registers unchanged: on arm64 they are
// already in restarted form when the tracer first sees them (see
// syscallSite), so re-running the svc at pc re-executes the interrupted call
// with its original number (x8) and arguments (x0 restored from orig_x0).
// The arm64 glue forgets the syscall (NT_ARM_SYSTEM_CALL = NO_SYSCALL) with
// every register write, the counterpart of orig_rax = -1 on x86_64, so the
// kernel does not treat the restored x0 as a restart code on the way out.
//
// One difference from the kernel's own path: a call that returned
// -ERESTART_RESTARTBLOCK (e.g. a relative nanosleep or clock_nanosleep, a
// futex wait or poll with a timeout) would have gone through
// restart_syscall and continued with the time left; here it is executed
// again from the start, so it restarts with its original timeout. It still
// completes normally. (do_signal only rewrites x8 to __NR_restart_syscall
// when the thread first resumes, after the registers were read, and the
// restart code itself is no longer visible to the tracer.) When no call was
// made, the registers written back are the ones read and that rewrite
// still happens at detach, so the call continues exactly as the kernel
// would have done.
func (r arm64Regs) restartForm() arm64Regs {
	return r
}
