package keyring

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// amd64Saved returns registers with a distinct value in every field, as if
// read at an interrupt stop of a thread blocked in read(3, buf, 4096): rip
// just past the syscall instruction, rax -ERESTARTSYS.
func amd64Saved() amd64Regs {
	return amd64Regs{
		R15: 0x15, R14: 0x14, R13: 0x13, R12: 0x12, Rbp: 0xc000100f80, Rbx: 0xb0,
		R11: 0x246, R10: 0x10a, R9: 0x109, R8: 0x108,
		Rax: regNeg(errRestartSys), Rcx: 0x40a2e4, Rdx: 4096, Rsi: 0xc000123000, Rdi: 3,
		OrigRax: unix.SYS_READ, Rip: 0x40a2e4, Cs: amd64UserCS,
		Eflags: 0x246, Rsp: 0xc000100f40, Ss: 0x2b, FsBase: 0x7f0000000740, GsBase: 0,
		Ds: 0, Es: 0, Fs: 0, Gs: 0,
	}
}

func TestAmd64RegsLayout(t *testing.T) {
	// struct user_regs_struct: 27 registers.
	var r amd64Regs
	if got, want := unsafe.Sizeof(r), uintptr(27*8); got != want {
		t.Errorf("sizeof(amd64Regs) = %d, want %d", got, want)
	}
	for _, f := range []struct {
		name      string
		off, want uintptr
	}{
		{"Rax", unsafe.Offsetof(r.Rax), 10 * 8},
		{"OrigRax", unsafe.Offsetof(r.OrigRax), 15 * 8},
		{"Rip", unsafe.Offsetof(r.Rip), 16 * 8},
		{"Cs", unsafe.Offsetof(r.Cs), 17 * 8},
		{"Rsp", unsafe.Offsetof(r.Rsp), 19 * 8},
	} {
		if f.off != f.want {
			t.Errorf("offset of %s = %d, want %d", f.name, f.off, f.want)
		}
	}
}

func TestAmd64RegsCall(t *testing.T) {
	tests := []struct {
		name string
		site uintptr
		nr   uintptr
		args [6]uintptr
	}{
		{"keyctl join", 0x40a2e2, unix.SYS_KEYCTL, [6]uintptr{unix.KEYCTL_JOIN_SESSION_KEYRING, 0x7f0000001000}},
		{"mmap all args", 0x40a2e2, unix.SYS_MMAP, [6]uintptr{0, 4096, unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS, ^uintptr(0), 0}},
		{"six distinct", 0x7fff0000, 1, [6]uintptr{10, 11, 12, 13, 14, 15}},
		{"zero args", 0x1000, unix.SYS_GETPID, [6]uintptr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := amd64Saved()
			before := saved
			args := tc.args
			got := saved.call(tc.site, tc.nr, &args)

			want := saved
			want.Rip = uint64(tc.site)
			want.Rax = uint64(tc.nr)
			want.OrigRax = ^uint64(0)
			want.Rdi, want.Rsi, want.Rdx = uint64(tc.args[0]), uint64(tc.args[1]), uint64(tc.args[2])
			want.R10, want.R8, want.R9 = uint64(tc.args[3]), uint64(tc.args[4]), uint64(tc.args[5])
			if got != want {
				t.Errorf("call() =\n %+v\nwant\n %+v", got, want)
			}
			if got.Rsp != before.Rsp || got.Rcx != before.Rcx || got.R11 != before.R11 || got.Eflags != before.Eflags || got.Cs != before.Cs || got.FsBase != before.FsBase {
				t.Errorf("call() changed rsp/rcx/r11/eflags/cs/fs_base")
			}
			if int64(got.OrigRax) != -1 {
				t.Errorf("orig_rax = %d, want -1", int64(got.OrigRax))
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

func TestAmd64RegsResult(t *testing.T) {
	const site = 0x40a2e2
	tests := []struct {
		name    string
		rip     uint64
		rax     uint64
		want    uintptr
		errno   unix.Errno
		badSite bool
	}{
		{"zero", site + 2, 0, 0, 0, false},
		{"small value", site + 2, 5, 5, 0, false},
		{"-1 is EPERM", site + 2, ^uint64(0), 0, unix.EPERM, false},
		{"-EDQUOT", site + 2, regNeg(int64(unix.EDQUOT)), 0, unix.EDQUOT, false},
		{"-4095 is the last errno", site + 2, regNeg(4095), 0, unix.Errno(4095), false},
		{"-4096 is a value", site + 2, regNeg(4096), uintptr(^uint64(4095)), 0, false},
		{"large user address", site + 2, 0x7f3a8c000000, 0x7f3a8c000000, 0, false},
		{"max positive", site + 2, 1<<63 - 1, 1<<63 - 1, 0, false},
		{"rip at syscall", site, 0, 0, 0, true},
		{"rip one past", site + 1, 0, 0, 0, true},
		{"rip too far", site + 4, 0, 0, 0, true},
		{"rip elsewhere", 0x400000, 0, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := amd64Saved()
			r.Rip, r.Rax = tc.rip, tc.rax
			got, err := r.result(site)
			switch {
			case tc.badSite:
				if !errors.Is(err, ErrUnsupportedTarget) {
					t.Errorf("result() = %#x, %v; want an ErrUnsupportedTarget for rip %#x", got, err, tc.rip)
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

func TestAmd64RegsSyscallSite(t *testing.T) {
	tests := []struct {
		name    string
		rip     uint64
		origRax uint64
		cs      uint64
		ok      bool
	}{
		{"read", 0x40a2e4, unix.SYS_READ, amd64UserCS, true},
		{"recvfrom", 0x40a2e4, unix.SYS_RECVFROM, amd64UserCS, true},
		{"rip 2", 2, unix.SYS_READ, amd64UserCS, true},
		{"orig_rax -1", 0x40a2e4, ^uint64(0), amd64UserCS, false},
		{"orig_rax very negative", 0x40a2e4, 1 << 63, amd64UserCS, false},
		{"32-bit cs", 0x40a2e4, unix.SYS_READ, 0x23, false},
		{"kernel cs", 0x40a2e4, unix.SYS_READ, 0x10, false},
		{"zero cs", 0x40a2e4, unix.SYS_READ, 0, false},
		{"rip 0", 0, unix.SYS_READ, amd64UserCS, false},
		{"rip 1", 1, unix.SYS_READ, amd64UserCS, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := amd64Saved()
			r.Rip, r.OrigRax, r.Cs = tc.rip, tc.origRax, tc.cs
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
			if addr != uintptr(tc.rip-2) {
				t.Errorf("site = %#x, want rip-2 = %#x", addr, tc.rip-2)
			}
			if string(insn) != "\x0f\x05" {
				t.Errorf("insn = % x, want 0f 05", insn)
			}
		})
	}
}

func TestAmd64RegsRestartForm(t *testing.T) {
	const rip = 0x40a2e4
	minus1 := ^uint64(0)
	tests := []struct {
		name    string
		rax     int64
		origRax uint64
		wantRax uint64
		wantRip uint64
	}{
		{"ERESTARTSYS", -errRestartSys, unix.SYS_READ, unix.SYS_READ, rip - 2},
		{"ERESTARTNOINTR", -errRestartNoIntr, unix.SYS_RECVFROM, unix.SYS_RECVFROM, rip - 2},
		{"ERESTARTNOHAND", -errRestartNoHand, unix.SYS_PPOLL, unix.SYS_PPOLL, rip - 2},
		{"ERESTART_RESTARTBLOCK", -errRestartRestartBlock, unix.SYS_NANOSLEEP, amd64RestartSyscall, rip - 2},
		{"-515 is not a restart code", -515, unix.SYS_READ, regNeg(515), rip},
		{"EINTR", -int64(unix.EINTR), unix.SYS_EPOLL_PWAIT, regNeg(int64(unix.EINTR)), rip},
		{"returned 5", 5, unix.SYS_READ, 5, rip},
		{"orig_rax -1 with ERESTARTSYS", -errRestartSys, minus1, regNeg(errRestartSys), rip},
		{"orig_rax -1 with ERESTART_RESTARTBLOCK", -errRestartRestartBlock, minus1, regNeg(errRestartRestartBlock), rip},
		{"orig_rax -1 with 5", 5, minus1, 5, rip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := amd64Saved()
			saved.Rip, saved.Rax, saved.OrigRax = rip, uint64(tc.rax), tc.origRax
			before := saved
			got := saved.restartForm()

			want := saved
			want.Rax, want.Rip, want.OrigRax = tc.wantRax, tc.wantRip, minus1
			if got != want {
				t.Errorf("restartForm() =\n %+v\nwant\n %+v", got, want)
			}
			if saved != before {
				t.Errorf("restartForm() modified the saved registers")
			}
			// Injected calls work on copies: the saved form survives them.
			args := [6]uintptr{1, 2, 3, 4, 5, 6}
			_ = saved.call(rip-2, unix.SYS_GETPID, &args)
			if saved.restartForm() != got {
				t.Errorf("restartForm() changed after call()")
			}
		})
	}
}

// regNeg is -n as a register value (the constant conversion
// uint64(-n) does not compile).
func regNeg(n int64) uint64 { return uint64(-n) }
