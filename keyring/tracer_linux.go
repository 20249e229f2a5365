package keyring

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds an injection when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// restoreGrace is how long the engine keeps waiting for the target to stop
// so it can be restored after the deadline passed or the caller cancelled.
// Injected calls never block, so the stop comes within microseconds.
const restoreGrace = time.Second

var (
	// ErrTimeout means the deadline passed before the target stopped.
	ErrTimeout = errors.New("timed out waiting for the target to stop")
	// ErrCanceled means Options.Cancel was closed.
	ErrCanceled = errors.New("canceled")
	// ErrTargetExited means the target exited or was killed while attached.
	ErrTargetExited = errors.New("target exited")
	// ErrNotRestored means the target could not be put back as it was.
	ErrNotRestored = errors.New("target could not be restored")
)

// Options bound an injection.
type Options struct {
	// Timeout bounds everything from attach to detach.
	Timeout time.Duration
	// Cancel, when closed, makes the engine restore and detach at once.
	Cancel <-chan struct{}
	// Verify runs after the thread is seized and before it is stopped or
	// changed; an error aborts the injection untouched. Use it to check,
	// now that the thread cannot be exchanged, that it is the right one.
	Verify func() error
}

// Timings says how long each phase of an injection took.
type Timings struct {
	Enter time.Duration // seize, stop, save
	Work  time.Duration // the caller's remote calls
	Leave time.Duration // unmap, restore, detach
}

// Inject stops the thread tid (a process's main thread when tid is its
// pid), runs fn with a Syscaller whose calls the thread makes itself, then
// puts the thread back exactly as it was: registers in restarted form,
// signal mask, and any scratch memory unmapped. It returns fn's error, or
// the engine's, after the thread has been restored and detached.
//
// All ptrace requests come from one locked OS thread. If the thread cannot
// be detached cleanly it is left to exit, which makes the kernel detach.
func Inject(tid int, opts Options, fn func(Syscaller) error) (Timings, error) {
	type result struct {
		t   Timings
		err error
	}
	done := make(chan result, 1)
	onTracerThread(func() bool {
		t := &tracee{tid: tid}
		tm, err := t.run(opts, fn)
		done <- result{tm, err}
		return t.detached
	})
	r := <-done
	return r.t, r.err
}

// onTracerThread runs work on a locked OS thread other than the main one.
// When work reports it did not detach cleanly the thread is left to exit,
// and the kernel detaches whatever it still traces; the main thread never
// exits (the Go runtime parks it instead), so it is never used.
func onTracerThread(work func() bool) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			if work() {
				runtime.UnlockOSThread()
			}
			return
		}
		// Hold the main thread while a second goroutine starts, so that
		// one is given another thread.
		hop := make(chan struct{})
		go func() {
			defer close(hop)
			runtime.LockOSThread()
			if work() {
				runtime.UnlockOSThread()
			}
		}()
		<-hop
		runtime.UnlockOSThread()
	}()
}

// tracee is a thread seized by the calling OS thread.
type tracee struct {
	tid      int
	w        *waiter
	deadline time.Time
	cancel   <-chan struct{}

	attached bool // seized and not yet detached
	detached bool // detached, or gone: nothing is left attached to us
	running  bool // resumed, its next stop not yet consumed
	changed  bool // registers or signal mask differ from the saved ones

	saved     archRegs
	savedMask uint64
	allMask   uint64  // every signal; a field so its address is stable
	site      uintptr // address of the syscall instruction used
	scratch   uintptr // remote scratch page, 0 if none
	lastSys   bool    // the current stop is a syscall stop
	pending   unix.Signal
}

func (t *tracee) run(opts Options, fn func(Syscaller) error) (tm Timings, err error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	t.deadline, t.cancel = start.Add(timeout), opts.Cancel
	t.w = newWaiter()
	defer t.w.close()

	err = t.enter(opts.Verify)
	tm.Enter = time.Since(start)
	if err == nil {
		err = fn(t)
	}
	workEnd := time.Now()
	tm.Work = workEnd.Sub(start) - tm.Enter
	if rerr := t.leave(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	tm.Leave = time.Since(workEnd)
	return tm, err
}

func (t *tracee) enter(verify func() error) error {
	// PTRACE_SEIZE does not stop the thread; TRACESYSGOOD marks syscall
	// stops with 0x80. x/sys's PtraceSeize passes no options.
	if err := ptrace(unix.PTRACE_SEIZE, t.tid, 0, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return seizeErr(t.tid, err)
	}
	t.attached = true
	if verify != nil {
		if err := verify(); err != nil {
			return err
		}
	}
	if err := ptrace(unix.PTRACE_INTERRUPT, t.tid, 0, 0); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_INTERRUPT)", t.tid, err))
	}
	t.running = true
	if err := t.waitEventStop(); err != nil {
		return err
	}
	if err := t.getRegs(&t.saved); err != nil {
		return err
	}
	site, insn, err := t.saved.syscallSite()
	if err != nil {
		return err
	}
	got := make([]byte, len(insn))
	if err := t.ReadMemory(site, got); err != nil {
		return fmt.Errorf("reading the instruction at %#x: %w", site, err)
	}
	if string(got) != string(insn) {
		return errorf("no syscall instruction at %#x (found % x, want % x); refusing to guess", site, got, insn)
	}
	t.site = site
	if err := ptrace(unix.PTRACE_GETSIGMASK, t.tid, 8, uintptr(unsafe.Pointer(&t.savedMask))); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_GETSIGMASK)", t.tid, err))
	}
	// Block every signal while the thread runs our calls, so no handler runs
	// on borrowed registers; what arrives stays pending until restore.
	t.changed = true
	t.allMask = ^uint64(0)
	if err := ptrace(unix.PTRACE_SETSIGMASK, t.tid, 8, uintptr(unsafe.Pointer(&t.allMask))); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_SETSIGMASK)", t.tid, err))
	}
	return nil
}

// leave undoes everything enter and the calls did, then detaches. It runs
// on every path.
func (t *tracee) leave() error {
	if !t.attached {
		return nil
	}
	if !t.changed {
		// Nothing to put back. Should the thread not have stopped yet, our
		// thread's exit detaches it and drops the pending interrupt.
		if !t.running && ptrace(unix.PTRACE_DETACH, t.tid, 0, 0) == nil {
			t.attached, t.detached = false, true
		}
		return nil
	}
	if t.running {
		// Only a call that never came back leaves the thread running with
		// our registers; there is no stop left at which to restore them.
		return fmt.Errorf("%w: thread %d did not stop after an injected call", ErrNotRestored, t.tid)
	}
	var errs []error
	if t.scratch != 0 {
		addr := t.scratch
		t.scratch = 0
		if _, err := t.call(unix.SYS_MUNMAP, addr, ScratchSize); err != nil {
			errs = append(errs, fmt.Errorf("munmap(%#x) of the scratch page: %w", addr, err))
			if !t.attached || t.running {
				return t.restoreFailed(errors.Join(errs...))
			}
		}
	}
	regs := t.saved.restartForm()
	if err := t.setRegs(&regs); err != nil {
		return t.restoreFailed(err)
	}
	if err := ptrace(unix.PTRACE_SETSIGMASK, t.tid, 8, uintptr(unsafe.Pointer(&t.savedMask))); err != nil {
		return t.restoreFailed(t.lost(syscallErr("ptrace(PTRACE_SETSIGMASK)", t.tid, err)))
	}
	t.changed = false
	// A signal held back while we worked goes with the detach; the kernel
	// delivers that only from a syscall stop, so otherwise send it anew.
	sig := 0
	if t.pending != 0 && t.lastSys {
		sig = int(t.pending)
	}
	if err := ptrace(unix.PTRACE_DETACH, t.tid, 0, uintptr(sig)); err != nil {
		return errors.Join(append(errs, t.lost(syscallErr("ptrace(PTRACE_DETACH)", t.tid, err)))...)
	}
	t.attached, t.detached = false, true
	if t.pending != 0 && sig == 0 {
		if err := unix.Tgkill(t.tid, t.tid, t.pending); err != nil {
			errs = append(errs, syscallErr(fmt.Sprintf("tgkill(%s)", unix.SignalName(t.pending)), t.tid, err))
		}
	}
	return errors.Join(errs...)
}

// restoreFailed reports a restore that could not complete. A target that
// is gone needs no restoring.
func (t *tracee) restoreFailed(err error) error {
	if errors.Is(err, ErrTargetExited) {
		return err
	}
	return fmt.Errorf("%w: thread %d: %w", ErrNotRestored, t.tid, err)
}

// Syscall implements Syscaller: the thread runs nr from the syscall
// instruction it was stopped at, with the saved registers otherwise intact.
// Cancellation and the deadline are honoured between calls, never inside
// one, so the thread is always at a stop where it can be restored.
func (t *tracee) Syscall(nr uintptr, args ...uintptr) (uintptr, error) {
	select {
	case <-t.cancel:
		return 0, fmt.Errorf("%w before syscall %d in thread %d", ErrCanceled, nr, t.tid)
	default:
	}
	if time.Now().After(t.deadline) {
		return 0, fmt.Errorf("%w: deadline passed before syscall %d in thread %d", ErrTimeout, nr, t.tid)
	}
	return t.call(nr, args...)
}

func (t *tracee) call(nr uintptr, args ...uintptr) (uintptr, error) {
	if !t.attached || t.running {
		return 0, fmt.Errorf("thread %d is not stopped under our control", t.tid)
	}
	var a [6]uintptr
	copy(a[:], args)
	regs := t.saved.call(t.site, nr, &a)
	if err := t.setRegs(&regs); err != nil {
		return 0, err
	}
	// An injected call never blocks: it gets restoreGrace of its own,
	// whatever is left of the deadline.
	limit := time.Now().Add(restoreGrace)
	if err := t.resumeToSyscallStop(limit); err != nil { // entry
		return 0, err
	}
	if err := atSyscallEntry(t.tid, nr); err != nil {
		return 0, t.lost(err)
	}
	if err := t.resumeToSyscallStop(limit); err != nil { // exit
		return 0, err
	}
	if err := t.getRegs(&regs); err != nil {
		return 0, err
	}
	return regs.result(t.site)
}

// Scratch implements Syscaller: a private anonymous page mapped in the
// target on first use and unmapped on leave. A Go thread's stack has too
// little room below its stack pointer to borrow.
func (t *tracee) Scratch() (uintptr, error) {
	if t.scratch != 0 {
		return t.scratch, nil
	}
	addr, err := t.Syscall(unix.SYS_MMAP, 0, ScratchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		return 0, fmt.Errorf("remote mmap(NULL, %d, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) in %d: %w", ScratchSize, t.tid, err)
	}
	t.scratch = addr
	return addr, nil
}

// WriteMemory implements Syscaller.
func (t *tracee) WriteMemory(addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(b)}}
	n, err := unix.ProcessVMWritev(t.tid, local, remote, 0)
	if err != nil {
		return syscallErr(fmt.Sprintf("process_vm_writev(%#x, %d)", addr, len(b)), t.tid, err)
	}
	if n != len(b) {
		return fmt.Errorf("process_vm_writev(%#x, %d) in %d: short write of %d bytes", addr, len(b), t.tid, n)
	}
	return nil
}

// ReadMemory implements Syscaller.
func (t *tracee) ReadMemory(addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(b)}}
	n, err := unix.ProcessVMReadv(t.tid, local, remote, 0)
	if err != nil {
		return syscallErr(fmt.Sprintf("process_vm_readv(%#x, %d)", addr, len(b)), t.tid, err)
	}
	if n != len(b) {
		return fmt.Errorf("process_vm_readv(%#x, %d) in %d: short read of %d bytes", addr, len(b), t.tid, n)
	}
	return nil
}

func (t *tracee) getRegs(r *archRegs) error { return t.lost(getRegs(t.tid, r)) }
func (t *tracee) setRegs(r *archRegs) error { return t.lost(setRegs(t.tid, r)) }

// ptraceEvent is the PTRACE_EVENT_* of a stop (status>>16), 0 for none.
// x/sys's TrapCause only reports it for SIGTRAP stops, but a group-stop
// seen through PTRACE_SEIZE is PTRACE_EVENT_STOP with the stop signal.
func ptraceEvent(ws unix.WaitStatus) int { return int(uint32(ws) >> 16) }

const syscallStop = unix.SIGTRAP | 0x80

// resumeToSyscallStop resumes the thread with PTRACE_SYSCALL until its next
// syscall stop. Signals that reach it meanwhile (only those that cannot be
// blocked) are held back and delivered at detach.
func (t *tracee) resumeToSyscallStop(limit time.Time) error {
	for {
		if err := ptrace(unix.PTRACE_SYSCALL, t.tid, 0, 0); err != nil {
			return t.lost(syscallErr("ptrace(PTRACE_SYSCALL)", t.tid, err))
		}
		t.running = true
		ws, err := t.wait(limit, nil)
		if err != nil {
			return err
		}
		t.lastSys = ws.StopSignal() == syscallStop && ptraceEvent(ws) == 0
		switch {
		case t.lastSys:
			return nil
		case ptraceEvent(ws) != 0:
			// A group-stop or interrupt: resume; the kernel re-enters any
			// group stop still in force when we detach.
		default:
			// Signal-delivery stop: suppress now, deliver at detach.
			if t.pending == 0 {
				t.pending = ws.StopSignal()
			}
		}
	}
}

// waitEventStop waits for the PTRACE_EVENT_STOP that PTRACE_INTERRUPT (or
// a group stop) produces, passing on signals that arrive first.
func (t *tracee) waitEventStop() error {
	for {
		ws, err := t.wait(t.deadline, t.cancel)
		if err != nil {
			return err
		}
		if ptraceEvent(ws) == unix.PTRACE_EVENT_STOP {
			t.lastSys = false
			return nil
		}
		sig := 0
		if ptraceEvent(ws) == 0 && ws.StopSignal() != syscallStop {
			sig = int(ws.StopSignal())
		}
		if err := ptrace(unix.PTRACE_CONT, t.tid, 0, uintptr(sig)); err != nil {
			return t.lost(syscallErr("ptrace(PTRACE_CONT)", t.tid, err))
		}
		t.running = true
	}
}

// wait waits for the thread's next stop or its death.
func (t *tracee) wait(limit time.Time, cancel <-chan struct{}) (unix.WaitStatus, error) {
	ws, err := t.w.wait(t.tid, limit, cancel)
	if err != nil {
		return ws, err
	}
	if ws.Exited() || ws.Signaled() {
		t.attached, t.detached, t.running = false, true, false
		return ws, fmt.Errorf("%w: thread %d %s", ErrTargetExited, t.tid, describeStatus(ws))
	}
	t.running = false
	return ws, nil
}

// lost turns ESRCH from a ptrace request into ErrTargetExited when the
// thread is really gone: killed threads leave a status to collect.
func (t *tracee) lost(err error) error {
	if err == nil || !errors.Is(err, unix.ESRCH) {
		return err
	}
	ws, werr := t.w.wait(t.tid, time.Now().Add(restoreGrace), nil)
	if werr == nil && (ws.Exited() || ws.Signaled()) {
		t.attached, t.detached, t.running = false, true, false
		return fmt.Errorf("%w: thread %d %s: %w", ErrTargetExited, t.tid, describeStatus(ws), err)
	}
	if errors.Is(werr, ErrTargetExited) {
		t.attached, t.detached, t.running = false, true, false
		return fmt.Errorf("%w: %w", werr, err)
	}
	return err
}

func describeStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("was killed by %s", unix.SignalName(ws.Signal()))
	case ws.Stopped():
		return fmt.Sprintf("stopped by %s (event %d)", unix.SignalName(ws.StopSignal()), ptraceEvent(ws))
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// waiter waits for one thread's ptrace stops with a time limit and a
// cancel channel. wait4 cannot be interrupted, so it polls with WNOHANG:
// first a short spin, since an injected call stops again within
// microseconds, then on each SIGCHLD (the kernel sends one to the tracer on
// every stop), with a slow tick as a backstop. It never waits for any pid
// but the one given: wait4(-1) would steal other children's and tracees'
// events.
type waiter struct {
	sigc chan os.Signal
}

func newWaiter() *waiter {
	w := &waiter{sigc: make(chan os.Signal, 1)}
	signal.Notify(w.sigc, unix.SIGCHLD)
	return w
}

func (w *waiter) close() { signal.Stop(w.sigc) }

const (
	spinPolls    = 200
	backstopTick = 10 * time.Millisecond
)

func (w *waiter) wait(tid int, limit time.Time, cancel <-chan struct{}) (unix.WaitStatus, error) {
	var timer *time.Timer
	var tick *time.Ticker
	defer func() {
		if timer != nil {
			timer.Stop()
			tick.Stop()
		}
	}()
	expired := false
	for i := 0; ; i++ {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ECHILD:
			return ws, fmt.Errorf("%w: wait4(%d): %w", ErrTargetExited, tid, err)
		case err != nil:
			return ws, syscallErr("wait4(__WALL|WNOHANG)", tid, err)
		case pid == tid:
			return ws, nil
		}
		if expired {
			return ws, fmt.Errorf("%w: thread %d", ErrTimeout, tid)
		}
		if i < spinPolls {
			unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		if timer == nil {
			timer, tick = time.NewTimer(time.Until(limit)), time.NewTicker(backstopTick)
		}
		select {
		case <-w.sigc:
		case <-tick.C:
		case <-timer.C:
			// Poll once more before giving up: the stop may have come.
			expired = true
		case <-cancel:
			return ws, fmt.Errorf("%w while waiting for thread %d to stop", ErrCanceled, tid)
		}
	}
}

// ptrace makes a raw request. uintptrescapes keeps pointers passed as addr
// or data valid for the call.
//
//go:uintptrescapes
func ptrace(req int, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func syscallErr(call string, tid int, err error) error {
	return fmt.Errorf("%s on thread %d: %w", call, tid, err)
}

func seizeErr(tid int, err error) error {
	base := syscallErr("ptrace(PTRACE_SEIZE)", tid, err)
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%w: no such process", base)
	case errors.Is(err, unix.EPERM):
		if tracer := tracerPid(tid); tracer > 0 {
			return fmt.Errorf("%w: already traced by pid %d", base, tracer)
		}
		return fmt.Errorf("%w: not permitted: the hook needs CAP_SYS_PTRACE over the target's user namespace, and YAMA ptrace_scope must be below 3", base)
	}
	return base
}
