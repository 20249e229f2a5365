package keyring

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// arm64Saved returns registers with a distinct value in every field, as if
// read at an interrupt stop of a thread blocked in read(3, buf, 4096) whose
// pc was already rewound to the svc.
func arm64Saved() arm64Regs {
	var r arm64Regs
	for i := range r.Regs {
		r.Regs[i] = 0x1000 + uint64(i)
	}
	r.Regs[0], r.Regs[1], r.Regs[2] = 3, 0xc000123000, 4096
	r.Regs[8] = unix.SYS_READ
	r.Sp = 0xc000100f40
	r.Pc = 0x4a1f2c
	r.Pstate = 0x60001000 // Z, C, SSBS; EL0t
	return r
}

func TestArm64RegsLayout(t *testing.T) {
	// struct user_pt_regs: 31 general registers, sp, pc, pstate.
	var r arm64Regs
	if got, want := unsafe.Sizeof(r), uintptr(34*8); got != want {
		t.Errorf("sizeof(arm64Regs) = %d, want %d", got, want)
	}
	for _, f := range []struct {
		name      string
		off, want uintptr
	}{
		{"Sp", unsafe.Offsetof(r.Sp), 31 * 8},
		{"Pc", unsafe.Offsetof(r.Pc), 32 * 8},
		{"Pstate", unsafe.Offsetof(r.Pstate), 33 * 8},
	} {
		if f.off != f.want {
			t.Errorf("offset of %s = %d, want %d", f.name, f.off, f.want)
		}
	}
	if got, want := arm64SyscallInsn, []byte{0x01, 0x00, 0x00, 0xd4}; string(got) != string(want) {
		t.Errorf("svc #0 = % x, want % x", got, want)
	}
}

func TestArm64RegsCall(t *testing.T) {
	tests := []struct {
		name string
		site uintptr
		nr   uintptr
		args [6]uintptr
	}{
		{"keyctl join", 0x4a1f2c, unix.SYS_KEYCTL, [6]uintptr{unix.KEYCTL_JOIN_SESSION_KEYRING, 0x7f0000001000}},
		{"mmap all args", 0x4a1f2c, unix.SYS_MMAP, [6]uintptr{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, ^uintptr(0), 0}},
		{"six distinct", 0xffff0000, 1, [6]uintptr{10, 11, 12, 13, 14, 15}},
		{"zero args", 0x1000, unix.SYS_GETPID, [6]uintptr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := arm64Saved()
			before := saved
			args := tc.args
			got := saved.call(tc.site, tc.nr, &args)

			want := saved
			want.Pc = uint64(tc.site)
			want.Regs[8] = uint64(tc.nr)
			for i, a := range tc.args {
				want.Regs[i] = uint64(a)
			}
			if got != want {
				t.Errorf("call() =\n %+v\nwant\n %+v", got, want)
			}
			if got.Sp != before.Sp || got.Pstate != before.Pstate {
				t.Errorf("sp/pstate changed: %#x/%#x, want %#x/%#x", got.Sp, got.Pstate, before.Sp, before.Pstate)
			}
			for i := 6; i < len(got.Regs); i++ {
				if i != 8 && got.Regs[i] != before.Regs[i] {
					t.Errorf("x%d = %#x, want %#x (untouched)", i, got.Regs[i], before.Regs[i])
				}
			}
			if saved != before {
				t.Errorf("call() modified the saved registers")
			}
			if args != tc.args {
				t.Errorf("call() modified the arguments")
			}
		})
	}
}

func TestArm64RegsResult(t *testing.T) {
	const site = 0x4a1f2c
	tests := []struct {
		name    string
		pc      uint64
		x0      uint64
		want    uintptr
		errno   unix.Errno
		badSite bool
	}{
		{"zero", site + 4, 0, 0, 0, false},
		{"small value", site + 4, 5, 5, 0, false},
		{"-1 is EPERM", site + 4, ^uint64(0), 0, unix.EPERM, false},
		{"-EDQUOT", site + 4, regNeg(int64(unix.EDQUOT)), 0, unix.EDQUOT, false},
		{"-4095 is the last errno", site + 4, regNeg(4095), 0, unix.Errno(4095), false},
		{"-4096 is a value", site + 4, regNeg(4096), uintptr(^uint64(4095)), 0, false},
		{"large user address", site + 4, 0xffff8a3c1000, 0xffff8a3c1000, 0, false},
		{"top-half address", site + 4, 0xffff000000000000, 0xffff000000000000, 0, false},
		{"max positive", site + 4, 1<<63 - 1, 1<<63 - 1, 0, false},
		{"pc still at svc", site, 0, 0, 0, true},
		{"pc two past", site + 2, 0, 0, 0, true},
		{"pc one insn too far", site + 8, 0, 0, 0, true},
		{"pc elsewhere", 0x400000, 0, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := arm64Saved()
			r.Pc, r.Regs[0] = tc.pc, tc.x0
			got, err := r.result(site)
			switch {
			case tc.badSite:
				if !errors.Is(err, ErrUnsupportedTarget) {
					t.Errorf("result() = %#x, %v; want an ErrUnsupportedTarget for pc %#x", got, err, tc.pc)
				}
			case tc.errno != 0:
				var e unix.Errno
				if !errors.As(err, &e) || e != tc.errno || got != 0 {
					t.Errorf("result() = %#x, %v; want 0, errno %d", got, err, int(tc.errno))
				}
			default:
				if err != nil || got != tc.want {
					t.Errorf("result() = %#x, %v; want %#x, nil", got, err, tc.want)
				}
			}
		})
	}
}

func TestArm64RegsSyscallSite(t *testing.T) {
	tests := []struct {
		name   string
		pc     uint64
		pstate uint64
		ok     bool
	}{
		{"EL0t", 0x4a1f2c, 0, true},
		{"EL0t with flags", 0x4a1f2c, 0xf0000000, true},
		{"EL0t with SSBS and BTYPE", 0xffffa0001000, 0x1c00, true},
		{"pc 4-aligned low", 4, 0, true},
		{"pc +1", 0x4a1f2d, 0, false},
		{"pc +2", 0x4a1f2e, 0, false},
		{"pc +3", 0x4a1f2f, 0, false},
		{"EL1t", 0x4a1f2c, 0x4, false},
		{"EL1h", 0x4a1f2c, 0x5, false},
		{"EL2h", 0x4a1f2c, 0x9, false},
		{"compat usr32", 0x4a1f2c, 0x10, false},
		{"compat usr32 thumb", 0x4a1f2c, 0x30, false},
		{"compat svc32", 0x4a1f2c, 0x13, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := arm64Saved()
			r.Pc, r.Pstate = tc.pc, tc.pstate
			before := r
			addr, insn, err := r.syscallSite()
			if r != before {
				t.Errorf("syscallSite() modified the registers")
			}
			if !tc.ok {
				if !errors.Is(err, ErrUnsupportedTarget) {
					t.Errorf("syscallSite() = %#x, % x, %v; want an ErrUnsupportedTarget", addr, insn, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("syscallSite() error: %v", err)
			}
			if addr != uintptr(tc.pc) {
				t.Errorf("site = %#x, want pc %#x", addr, tc.pc)
			}
			if string(insn) != string(arm64SyscallInsn) {
				t.Errorf("insn = % x, want % x", insn, arm64SyscallInsn)
			}
		})
	}
}

// arm64InterruptStop models what arch/arm64/kernel/signal.c do_signal does
// to a thread's registers before get_signal, where PTRACE_INTERRUPT stops
// it: the thread made syscall nr with first argument origX0 at svc and the
// call returned retval.
func arm64InterruptStop(svc uint64, nr, origX0 uint64, retval int64) arm64Regs {
	r := arm64Saved()
	r.Regs[8] = nr
	r.Regs[0] = uint64(retval)
	r.Pc = svc + 4
	switch -retval {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartRestartBlock:
		r.Regs[0] = origX0
		r.Pc = svc
	}
	return r
}

func TestArm64RegsRestartForm(t *testing.T) {
	const svc = 0x4a1f2c
	tests := []struct {
		name    string
		nr      uint64
		retval  int64
		restart bool // re-running the svc at pc repeats the interrupted call
	}{
		{"ERESTARTSYS read", unix.SYS_READ, -errRestartSys, true},
		{"ERESTARTNOINTR", unix.SYS_RECVFROM, -errRestartNoIntr, true},
		{"ERESTARTNOHAND", unix.SYS_PPOLL, -errRestartNoHand, true},
		{"ERESTART_RESTARTBLOCK nanosleep", unix.SYS_CLOCK_NANOSLEEP, -errRestartRestartBlock, true},
		{"EINTR", unix.SYS_EPOLL_PWAIT, -int64(unix.EINTR), false},
		{"returned 5", unix.SYS_READ, 5, false},
		{"returned 0", unix.SYS_READ, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const origX0 = 3
			stop := arm64InterruptStop(svc, tc.nr, origX0, tc.retval)
			got := stop.restartForm()
			if got != stop {
				t.Errorf("restartForm() =\n %+v\nwant the registers unchanged\n %+v", got, stop)
			}
			if tc.restart {
				if got.Pc != svc || got.Regs[0] != origX0 || got.Regs[8] != tc.nr {
					t.Errorf("restarted form pc %#x x0 %d x8 %d, want pc %#x x0 %d x8 %d", got.Pc, got.Regs[0], got.Regs[8], uint64(svc), origX0, tc.nr)
				}
			}
			// Injected calls work on copies: the saved form survives them.
			args := [6]uintptr{1, 2, 3, 4, 5, 6}
			_ = stop.call(svc, unix.SYS_GETPID, &args)
			if stop.restartForm() != got {
				t.Errorf("restartForm() changed after call()")
			}
		})
	}
}
