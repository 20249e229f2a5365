// Package standin starts stand-ins for a container's init: processes that
// block in a system call the way runc's and crun's inits wait on their sync
// pipe before execve, so the injection engine and the hook can be tested
// without a runtime. After the call returns, a stand-in reports how it
// ended and execs a reporter that prints its session keyring.
//
// Test binaries that use it call RunIfChild first in TestMain: the Go
// stand-ins and the reporter are the test binary itself, re-executed.
package standin

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

//go:embed testdata/standin.c
var cSource []byte

const childArg = "__okh_standin"

// Kind selects a stand-in.
type Kind string

const (
	// GoRead is a multithreaded Go process whose main thread is locked, as
	// runc init's is, blocked in read(2) on a pipe.
	GoRead Kind = "go-read"
	// GoRecvfrom is the same blocked in recvfrom(2) on a socketpair, as the
	// newest runc init is.
	GoRecvfrom Kind = "go-recvfrom"
	// CRead is a single-threaded C process blocked in read(2), as crun's init.
	CRead Kind = "c-read"
	// CRecvfrom is a single-threaded C process blocked in recvfrom(2).
	CRecvfrom Kind = "c-recvfrom"
	// CNanosleep is a single-threaded C process in nanosleep(2) for 600ms,
	// which the kernel restarts through restart_syscall.
	CNanosleep Kind = "c-nanosleep"
	// CReadSignals is CRead with SA_RESTART handlers that count SIGUSR1
	// and SigRT (Report.USR1, Report.RT). Not in All.
	CReadSignals Kind = "c-read-signals"
)

// SigRT is the real-time signal CReadSignals counts. Real-time signals
// queue: each one sent is delivered once, so a count shows none was lost.
const SigRT = unix.Signal(40)

// CReadBump is CRead from hand-written code whose instruction before the
// syscall instruction advances the buffer pointer (x86_64 and arm64): a
// restart from anywhere but the syscall instruction itself shows in the
// data read. Not in All.
const CReadBump Kind = "c-read-bump"

// All lists every kind.
var All = []Kind{GoRead, GoRecvfrom, CRead, CRecvfrom, CNanosleep}

func isChild() bool { return len(os.Args) > 2 && os.Args[1] == childArg }

func init() {
	// Package init runs on the main thread; keep the main goroutine there
	// for good, as runc init does, so the thread that blocks and execs is
	// tid == pid.
	if isChild() {
		runtime.LockOSThread()
	}
}

// RunIfChild runs the stand-in or reporter role and exits when the binary
// was started as one; otherwise it returns at once.
func RunIfChild() {
	if !isChild() {
		return
	}
	switch os.Args[2] {
	case "show":
		os.Exit(show())
	case "go-read":
		os.Exit(goBlock(false))
	case "go-recvfrom":
		os.Exit(goBlock(true))
	case "spin":
		spin()
	case "spin-read":
		// User code only for a while, then the read of GoRead.
		spinFor(300 * time.Millisecond)
		os.Exit(goBlock(false))
	case "sleep":
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "standin: unknown role %q\n", os.Args[2])
	os.Exit(2)
}

// Report is how the blocking call ended.
type Report struct {
	Call           string `json:"call"`
	Ret            int64  `json:"ret"`
	Errno          int    `json:"errno"`
	Data           string `json:"data"`
	ElapsedMS      int64  `json:"elapsed_ms"`
	SigUSR2Blocked bool   `json:"sigusr2_blocked"`
	USR1           int    `json:"usr1"` // SIGUSR1 handled (CReadSignals)
	RT             int    `json:"rt"`   // SigRT handled (CReadSignals)
}

// Keyring is the reporter's session keyring, as seen from inside.
type Keyring struct {
	Serial     int32  `json:"serial"`
	Type       string `json:"type"`
	UID        uint32 `json:"uid"`
	GID        uint32 `json:"gid"`
	Perm       string `json:"perm"`
	Name       string `json:"name"`
	UserSerial int32  `json:"user_serial"`
	Err        string `json:"error,omitempty"`
}

func goBlock(recv bool) int {
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(unix.SIGUSR2) - 1)
	unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
	start := time.Now()
	buf := make([]byte, 255)
	var n int
	var err error
	call := "read"
	if recv {
		call = "recvfrom"
		n, _, err = unix.Recvfrom(3, buf, 0)
	} else {
		n, err = unix.Read(3, buf)
	}
	var cur unix.Sigset_t
	unix.PthreadSigmask(unix.SIG_SETMASK, nil, &cur)
	r := Report{Call: call, Ret: int64(n), ElapsedMS: time.Since(start).Milliseconds(), SigUSR2Blocked: cur.Val[0]&(1<<(uint(unix.SIGUSR2)-1)) != 0}
	if err != nil {
		r.Ret, r.Errno = -1, int(err.(unix.Errno))
	} else {
		r.Data = string(buf[:n])
	}
	b, _ := json.Marshal(r)
	fmt.Printf("%s\n", b)
	exe, _ := os.Executable()
	err = unix.Exec(exe, []string{exe, childArg, "show"}, os.Environ())
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", exe, err)
	return 127
}

func show() int {
	k := Current()
	b, _ := json.Marshal(k)
	fmt.Printf("%s\n", b)
	return 0
}

// Current describes the calling thread's session keyring.
func Current() Keyring {
	var k Keyring
	id, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	if err != nil {
		k.Err = fmt.Sprintf("KEYCTL_GET_KEYRING_ID(@s): %v", err)
		return k
	}
	k.Serial = int32(id)
	if u, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, false); err == nil {
		k.UserSerial = int32(u)
	}
	d, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		k.Err = fmt.Sprintf("KEYCTL_DESCRIBE(%d): %v", id, err)
		return k
	}
	f := strings.SplitN(d, ";", 5)
	if len(f) != 5 {
		k.Err = fmt.Sprintf("malformed description %q", d)
		return k
	}
	uid, _ := strconv.ParseUint(f[1], 10, 32)
	gid, _ := strconv.ParseUint(f[2], 10, 32)
	k.Type, k.UID, k.GID, k.Perm, k.Name = f[0], uint32(uid), uint32(gid), f[3], f[4]
	return k
}

var (
	buildOnce sync.Once
	cBinary   string
	buildErr  error
)

// PrebuiltCEnv names a prebuilt standin.c binary to use instead of
// compiling one with cc: hack/test-arm64.sh cross-compiles it for the arm64
// VM, which has no compiler.
const PrebuiltCEnv = "OKH_STANDIN_C"

// cStandin compiles standin.c once per test binary, or returns the
// prebuilt one named by $OKH_STANDIN_C.
func cStandin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(PrebuiltCEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s: %v", PrebuiltCEnv, err)
		}
		return p
	}
	testutil.RequiresCommand(t, "cc")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "okh-standin-")
		if err != nil {
			buildErr = err
			return
		}
		src := filepath.Join(dir, "standin.c")
		if err := os.WriteFile(src, cSource, 0o644); err != nil {
			buildErr = err
			return
		}
		cBinary = filepath.Join(dir, "standin")
		if out, err := exec.Command("cc", "-O2", "-Wall", "-o", cBinary, src).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("cc standin.c: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return cBinary
}

// Process is a running stand-in.
type Process struct {
	Kind    Kind
	Pid     int
	cmd     *exec.Cmd
	trigger *os.File // write end of the pipe, or our end of the socketpair
	stdout  io.ReadCloser
	lines   *bufio.Reader
	waited  bool
}

// Syscall numbers the stand-ins block in, as /proc/<pid>/syscall shows.
var blockedIn = map[Kind]int{
	GoRead: unix.SYS_READ, CRead: unix.SYS_READ, CReadSignals: unix.SYS_READ,
	GoRecvfrom: unix.SYS_RECVFROM, CRecvfrom: unix.SYS_RECVFROM,
	CNanosleep: unix.SYS_NANOSLEEP, CReadBump: unix.SYS_READ,
}

// Command returns the stand-in's command, not started, with fd 3 wired:
// callers that need a sibling of another process start it themselves.
func Command(t testing.TB, kind Kind) (*exec.Cmd, *os.File) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch kind {
	case GoRead, GoRecvfrom:
		cmd = exec.Command(exe, childArg, string(kind))
	case CRead, CRecvfrom, CNanosleep, CReadSignals, CReadBump:
		cmd = exec.Command(cStandin(t), strings.TrimPrefix(string(kind), "c-"), exe, childArg, "show")
	default:
		t.Fatalf("unknown stand-in %q", kind)
	}
	var theirs, ours *os.File
	switch kind {
	case GoRecvfrom, CRecvfrom:
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs = os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
	default:
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		ours, theirs = w, r
	}
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	t.Cleanup(func() { theirs.Close(); ours.Close() })
	return cmd, ours
}

// Start starts a stand-in as a child of the test and waits until it is
// blocked in its system call.
func Start(t testing.TB, kind Kind) *Process {
	t.Helper()
	cmd, trigger := Command(t, kind)
	p := launch(t, kind, cmd, trigger)
	if err := WaitBlocked(p.Pid, blockedIn[kind], 10*time.Second); err != nil {
		t.Fatalf("stand-in %s: %v", kind, err)
	}
	return p
}

// launch starts cmd, made by Command, and kills it at cleanup unless the
// test saw it finish.
func launch(t testing.TB, kind Kind, cmd *exec.Cmd, trigger *os.File) *Process {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting stand-in %s: %v", kind, err)
	}
	cmd.ExtraFiles[0].Close()
	p := &Process{Kind: kind, Pid: cmd.Process.Pid, cmd: cmd, trigger: trigger, stdout: out, lines: bufio.NewReader(out)}
	t.Cleanup(func() {
		if !p.waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// WaitBlocked waits until thread pid sleeps in system call nr.
func WaitBlocked(pid, nr int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if err != nil {
			return err
		}
		last = strings.TrimSpace(string(b))
		if f := strings.Fields(last); len(f) > 0 && f[0] == strconv.Itoa(nr) && sleeping(pid) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("pid %d not blocked in syscall %d after %v (/proc/%d/syscall: %q)", pid, nr, timeout, pid, last)
}

func sleeping(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'S'
}

// StatusField returns the value of field name ("SigPnd", "ShdPnd",
// "SigBlk", "TracerPid", ...) of /proc/<pid>/status.
func StatusField(pid int, name string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

// SyscallLine returns /proc/<pid>/syscall: while the thread is blocked in
// a system call, its number, arguments, stack pointer and instruction
// pointer. The same line before and after an injection means the thread
// was put back with the registers its call uses.
func SyscallLine(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// LimitAddressSpace sets pid's RLIMIT_AS soft limit to its current virtual
// size, so that any mmap in it fails with ENOMEM, and returns a function
// that puts the old limit back (also run at cleanup).
func LimitAddressSpace(t testing.TB, pid int) (restore func()) {
	t.Helper()
	v, err := StatusField(pid, "VmSize")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		t.Fatalf("VmSize %q: %v", v, err)
	}
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, nil, &old); err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: kb << 10, Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &lim, nil); err != nil {
		t.Fatal(err)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if err := unix.Prlimit(pid, unix.RLIMIT_AS, &old, nil); err != nil && !errors.Is(err, unix.ESRCH) {
			t.Errorf("restoring RLIMIT_AS of %d: %v", pid, err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// SigBlk returns the SigBlk mask of /proc/<pid>/status.
func SigBlk(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigBlk:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no SigBlk in /proc/%d/status", pid)
}

// Release lets the blocked call complete: data is written to the pipe or
// socket (ignored by nanosleep, which ends by itself).
func (p *Process) Release(data string) error {
	if p.Kind == CNanosleep {
		return nil
	}
	_, err := p.trigger.Write([]byte(data))
	return err
}

// Finish waits for the stand-in's two report lines and its exit.
func (p *Process) Finish(timeout time.Duration) (Report, Keyring, error) {
	type res struct {
		r   Report
		k   Keyring
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var out res
		l1, err := p.lines.ReadString('\n')
		if err != nil {
			out.err = fmt.Errorf("reading call report: %v (got %q)", err, l1)
			ch <- out
			return
		}
		if err := json.Unmarshal([]byte(l1), &out.r); err != nil {
			out.err = fmt.Errorf("call report %q: %v", l1, err)
		}
		l2, err := p.lines.ReadString('\n')
		if err != nil {
			out.err = fmt.Errorf("reading keyring report: %v (got %q)", err, l2)
			ch <- out
			return
		}
		if err := json.Unmarshal([]byte(l2), &out.k); err != nil {
			out.err = fmt.Errorf("keyring report %q: %v", l2, err)
		}
		ch <- out
	}()
	select {
	case r := <-ch:
		p.waited = true
		werr := p.cmd.Wait()
		if r.err == nil && werr != nil {
			r.err = fmt.Errorf("stand-in exited: %v", werr)
		}
		return r.r, r.k, r.err
	case <-time.After(timeout):
		return Report{}, Keyring{}, fmt.Errorf("stand-in %s (pid %d) did not finish within %v: %s", p.Kind, p.Pid, timeout, State(p.Pid))
	}
}

// State is a one-line summary of a process for failure messages.
func State(pid int) string {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	return fmt.Sprintf("stat %q syscall %q tracer %d", strings.TrimSpace(string(stat)), strings.TrimSpace(string(sc)), TracerPid(pid))
}

// TracerPid returns /proc/<pid>/status's TracerPid, -1 if unreadable.
func TracerPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// StartSpinner starts a child that burns CPU in user space, never inside a
// system call, and returns its pid.
func StartSpinner(t testing.TB) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, childArg, "spin")
	// No asynchronous preemption: nothing interrupts the loop.
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	// Wait until the main thread has been seen outside any system call
	// (/proc/<pid>/syscall says "running" or -1) many times in a row.
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n < 50; {
		if time.Now().After(deadline) {
			t.Fatalf("spinner never settled in user space: %s", State(pid))
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "running" || f[0] == "-1") {
			n++
		} else {
			n = 0
		}
		time.Sleep(time.Millisecond)
	}
	return pid
}

// spinFor burns CPU in user space for about d without a system call (the
// clock is read through the vDSO).
func spinFor(d time.Duration) {
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		if i%4096 == 0 && time.Now().After(end) {
			return
		}
	}
}

// StartBusyThenRead starts GoRead that first runs its own code for 300ms,
// as a container's init does on its way to the sync pipe, and returns it
// once it has been seen doing so: a stop now lands outside any system
// call.
func StartBusyThenRead(t testing.TB) *Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd, trigger := Command(t, GoRead)
	cmd.Args = []string{exe, childArg, "spin-read"}
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	p := launch(t, GoRead, cmd, trigger)
	for n, deadline := 0, time.Now().Add(10*time.Second); n < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("stand-in never seen running its own code: %s", State(p.Pid))
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", p.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "running" || f[0] == "-1") {
			n++
		} else {
			n = 0
		}
		time.Sleep(200 * time.Microsecond)
	}
	return p
}

// spin never makes a system call on the main thread.
func spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Println(x)
		}
	}
}

// FreezerRoot is the cgroup v1 freezer hierarchy used by Freeze.
const FreezerRoot = "/sys/fs/cgroup/freezer"

// Freeze stops pid with the cgroup v1 freezer: unlike SIGSTOP, a frozen
// task does not even enter a ptrace stop. It returns a function that thaws
// it; cleanup thaws it and removes the cgroup in any case.
func Freeze(t testing.TB, pid int) (thaw func()) {
	t.Helper()
	_, err := os.Stat(filepath.Join(FreezerRoot, "freezer.state"))
	if os.IsNotExist(err) {
		_, err = os.Stat(filepath.Join(FreezerRoot, "cgroup.procs"))
	}
	testutil.Require(t, err == nil, "cgroup v1 freezer at %s: %v", FreezerRoot, err)
	dir := filepath.Join(FreezerRoot, fmt.Sprintf("okh-test-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	thaw = func() {
		if err := os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0); err != nil {
			t.Errorf("thawing %d: %v", pid, err)
		}
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(FreezerRoot, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		os.Remove(dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, "freezer.state")); string(b) == "FROZEN\n" {
			return thaw
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("cgroup never froze")
	return thaw
}
