package keyring

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
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
	Stops int           // ptrace stops the thread went through
	// Retries counts the times the thread was stopped outside a system
	// call and let run on to be stopped again.
	Retries int
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
		if unix.Gettid() == unix.Getpid() {
			// Hold the main thread while the work runs on a goroutine
			// that, the main thread being taken, gets another one.
			done := make(chan struct{})
			onTracerThread(func() bool {
				defer close(done)
				return work()
			})
			<-done
			runtime.UnlockOSThread()
			return
		}
		if work() {
			runtime.UnlockOSThread()
		}
	}()
}

// tracee is a thread seized by the calling OS thread.
type tracee struct {
	tid      int
	deadline time.Time
	cancel   <-chan struct{}

	attached bool // seized and not yet detached
	detached bool // detached, or gone: nothing is left attached to us
	running  bool // resumed, its next stop not yet consumed
	changed  bool // registers or signal mask differ from the saved ones

	saved     archRegs
	savedMask uint64
	allMask   uint64  // the signals blocked while working; a field so its address is stable
	site      uintptr // address of the syscall instruction used
	scratch   uintptr // remote scratch page, 0 if none
	step      bool    // calls single-step over the syscall instruction (stepOverSyscall)
	lastSys   bool    // the current stop is a syscall stop
	pending   []unix.Signal
	stops     int
	retries   int       // times the thread was let go to be stopped in a syscall
	groupStop bool      // the stop enter works from is a group stop
	siginfo   [128]byte // PTRACE_GETSIGINFO buffer
}

func (t *tracee) run(opts Options, fn func(Syscaller) error) (tm Timings, err error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	t.deadline, t.cancel = start.Add(timeout), opts.Cancel
	quietStops.acquire()
	defer quietStops.release()

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
	tm.Stops = t.stops
	tm.Retries = t.retries
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
	// Read /proc while the thread stops; the signal state it shows can as
	// well change a moment after the stop, from another of its threads.
	step := singleStepCalls && trapUntouched(t.tid)
	// The container's init blocks in its sync-pipe read before the runtime
	// runs hooks, but under load it may still be on its way there when the
	// stop lands: let it run on and look again, until the deadline.
	backoff := lookAgainMin
	for stopped := false; ; {
		if !stopped {
			if err := t.untilEventStop(t.deadline); err != nil {
				return err
			}
		}
		if err := t.getRegs(&t.saved); err != nil {
			return err
		}
		site, err := t.syscallSite()
		if err == nil {
			t.site = site
			break
		}
		if !errors.Is(err, errNotInSyscall) || t.groupStop || time.Until(t.deadline) < backoff+lookAgainMargin {
			if t.retries > 0 {
				err = fmt.Errorf("%w (looked %d times)", err, t.retries+1)
			}
			return err
		}
		if stopped, err = t.lookAgain(backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, lookAgainMax)
	}
	if err := ptrace(unix.PTRACE_GETSIGMASK, t.tid, 8, uintptr(unsafe.Pointer(&t.savedMask))); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_GETSIGMASK)", t.tid, err))
	}
	// Block every signal while the thread runs our calls, so no handler runs
	// on borrowed registers; what arrives stays pending until restore.
	// Single-stepping needs SIGTRAP unblocked (see stepOverSyscall); a
	// SIGTRAP sent meanwhile still never reaches a handler: it stops the
	// thread for us first and is held back like any other.
	t.changed = true
	t.allMask = ^uint64(0)
	if step {
		t.step = true
		t.allMask &^= 1 << (unix.SIGTRAP - 1)
	}
	if err := ptrace(unix.PTRACE_SETSIGMASK, t.tid, 8, uintptr(unsafe.Pointer(&t.allMask))); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_SETSIGMASK)", t.tid, err))
	}
	return nil
}

// Bounds of lookAgain's pauses, and the time it leaves before the deadline
// for the error to be reported.
const (
	lookAgainMin    = 50 * time.Microsecond
	lookAgainMax    = 2 * time.Millisecond
	lookAgainMargin = 10 * time.Millisecond
)

// syscallSite finds the syscall instruction the stopped thread is in.
func (t *tracee) syscallSite() (uintptr, error) {
	site, insn, err := t.saved.syscallSite()
	if err != nil {
		return 0, err
	}
	got := make([]byte, len(insn))
	if err := t.ReadMemory(site, got); err != nil {
		return 0, fmt.Errorf("reading the instruction at %#x: %w", site, err)
	}
	if string(got) != string(insn) {
		return 0, notInSyscallf("no syscall instruction at %#x (found % x, want % x); refusing to guess", site, got, insn)
	}
	return site, nil
}

// lookAgain resumes a thread found outside a system call, unchanged, and
// stops it again after pause. Signals on their way to it meanwhile are
// passed on at once, so that a queue of them drains while it runs. It
// reports stopped when a group stop (SIGSTOP and kin) came first: the
// thread is then stopped already and must not be interrupted.
func (t *tracee) lookAgain(pause time.Duration) (stopped bool, err error) {
	t.retries++
	if err := t.cont(0); err != nil {
		return false, err
	}
	err = t.untilEventStop(time.Now().Add(pause))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, ErrTimeout) {
		return false, err
	}
	if err := ptrace(unix.PTRACE_INTERRUPT, t.tid, 0, 0); err != nil {
		return false, t.lost(syscallErr("ptrace(PTRACE_INTERRUPT)", t.tid, err))
	}
	return false, nil
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
		// Only a call that never came back (a thread frozen by the cgroup
		// freezer mid-call, say) leaves the thread running with our
		// registers; there is no stop left at which to restore them.
		return t.killUnrestorable(fmt.Errorf("thread %d did not stop after an injected call", t.tid))
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
	if len(t.pending) > 0 && t.lastSys {
		sig = int(t.pending[0])
	}
	if err := ptrace(unix.PTRACE_DETACH, t.tid, 0, uintptr(sig)); err != nil {
		return errors.Join(append(errs, t.lost(syscallErr("ptrace(PTRACE_DETACH)", t.tid, err)))...)
	}
	t.attached, t.detached = false, true
	rest := t.pending
	if sig != 0 {
		rest = rest[1:]
	}
	for _, s := range rest {
		if err := unix.Tgkill(t.tid, t.tid, s); err != nil {
			errs = append(errs, syscallErr(fmt.Sprintf("tgkill(%s)", unix.SignalName(s)), t.tid, err))
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
	return t.killUnrestorable(fmt.Errorf("thread %d: %w", t.tid, err))
}

// killUnrestorable SIGKILLs a target that could not be put back: left
// alone it would run on with borrowed registers and every signal blocked
// (seen: a thread frozen mid-call, once thawed, returned the injected
// call's result from its read). SIGKILL cannot be blocked and is acted on
// before the thread runs user code again; the runtime would kill the
// container anyway once the hook fails. The thread is still traced by us,
// so its id cannot have been reused.
func (t *tracee) killUnrestorable(err error) error {
	if kerr := unix.Kill(t.tid, unix.SIGKILL); kerr != nil {
		return fmt.Errorf("%w: %w; and kill(SIGKILL) failed: %w", ErrNotRestored, err, kerr)
	}
	return fmt.Errorf("%w: %w; killed it rather than let it run on with borrowed registers", ErrNotRestored, err)
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
	if t.step {
		if err := t.stepOverSyscall(limit, &regs); err != nil {
			return 0, err
		}
		return regs.result(t.site)
	}
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

// stepOverSyscall runs the syscall instruction at t.site, set up in the
// thread's registers, with PTRACE_SINGLESTEP and leaves the registers of the
// stop after it in regs: one stop per call instead of a syscall-entry and a
// syscall-exit stop. On x86_64 the kernel reports a step over "syscall" on
// the call's way out, as a SIGTRAP (TRAP_BRKPT) signal-delivery stop with
// the instruction pointer just past the instruction; the thread has not run
// a user instruction since. Resuming without the signal discards it, so it
// never reaches the thread.
//
// The kernel raises that SIGTRAP with force_sig_fault, which resets the
// handler of a blocked or ignored SIGTRAP to SIG_DFL. So enter chooses
// stepping only when the process neither ignores SIGTRAP nor has one
// pending (trapUntouched), and leaves SIGTRAP unblocked while working. A
// SIGTRAP some process sends meanwhile is held back and sent again at
// detach, like any other signal.
func (t *tracee) stepOverSyscall(limit time.Time, regs *archRegs) error {
	for {
		if err := ptrace(unix.PTRACE_SINGLESTEP, t.tid, 0, 0); err != nil {
			return t.lost(syscallErr("ptrace(PTRACE_SINGLESTEP)", t.tid, err))
		}
		t.running = true
		ws, err := t.wait(limit, nil)
		if err != nil {
			return err
		}
		t.lastSys = false
		switch {
		case ptraceEvent(ws) != 0:
			// A group-stop or interrupt before the call ran: step again.
			continue
		case ws.StopSignal() != unix.SIGTRAP:
			t.hold(ws.StopSignal())
			continue
		}
		if err := t.getRegs(regs); err != nil {
			return err
		}
		if err := ptrace(unix.PTRACE_GETSIGINFO, t.tid, 0, uintptr(unsafe.Pointer(&t.siginfo[0]))); err != nil {
			return t.lost(syscallErr("ptrace(PTRACE_GETSIGINFO)", t.tid, err))
		}
		// si_code (offset 8) <= 0: sent by a process (SI_USER, SI_TKILL,
		// SI_QUEUE), not the kernel's step trap. A thread-directed one can
		// stand in for ours, so the position decides whether the call ran.
		if code := *(*int32)(unsafe.Pointer(&t.siginfo[8])); code <= 0 {
			t.hold(unix.SIGTRAP)
		}
		switch pc := stepPC(regs); pc {
		case t.site + syscallInsnLen:
			return nil
		case t.site:
			continue // a SIGTRAP from elsewhere, before the call ran
		default:
			return errorf("single-step over the syscall instruction at %#x stopped at %#x", t.site, pc)
		}
	}
}

// hold records a signal that reached the thread while it worked for us, to
// be delivered when it is restored.
func (t *tracee) hold(sig unix.Signal) {
	for _, s := range t.pending {
		if s == sig {
			return
		}
	}
	t.pending = append(t.pending, sig)
}

// trapUntouched reports whether single-stepping can leave the process's
// SIGTRAP handling as it is: SIGTRAP neither ignored nor pending, per
// /proc/<tid>/status. Any doubt answers false.
func trapUntouched(tid int) bool {
	b, err := readStatus(tid)
	if err != nil {
		return false
	}
	const trap = 1 << (unix.SIGTRAP - 1)
	for _, key := range []string{"SigPnd", "ShdPnd", "SigIgn"} {
		v, ok := StatusField(b, key)
		if !ok {
			return false
		}
		mask, err := strconv.ParseUint(v, 16, 64)
		if err != nil || mask&trap != 0 {
			return false
		}
	}
	return true
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
	return t.moveMemory("process_vm_writev", unix.ProcessVMWritev, addr, b)
}

// ReadMemory implements Syscaller.
func (t *tracee) ReadMemory(addr uintptr, b []byte) error {
	return t.moveMemory("process_vm_readv", unix.ProcessVMReadv, addr, b)
}

// moveMemory copies b to or from addr in the thread's memory with move,
// process_vm_writev or process_vm_readv, named call.
func (t *tracee) moveMemory(call string, move func(int, []unix.Iovec, []unix.RemoteIovec, uint) (int, error), addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(b)}}
	n, err := move(t.tid, local, remote, 0)
	if err != nil {
		return syscallErr(fmt.Sprintf("%s(%#x, %d)", call, addr, len(b)), t.tid, err)
	}
	if n != len(b) {
		return fmt.Errorf("%s(%#x, %d) in %d: only %d bytes moved", call, addr, len(b), t.tid, n)
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
			t.hold(ws.StopSignal())
		}
	}
}

// untilEventStop waits, until limit, for the PTRACE_EVENT_STOP that
// PTRACE_INTERRUPT (or a group stop) produces, passing on the signals that
// stop the thread first.
func (t *tracee) untilEventStop(limit time.Time) error {
	for {
		ws, err := t.wait(limit, t.cancel)
		if err != nil {
			return err
		}
		if ptraceEvent(ws) == unix.PTRACE_EVENT_STOP {
			t.lastSys = false
			// A group stop (SIGSTOP and kin) rather than our interrupt:
			// the thread must not be resumed to look again.
			t.groupStop = ws.StopSignal() != unix.SIGTRAP
			return nil
		}
		sig := 0
		if ptraceEvent(ws) == 0 && ws.StopSignal() != syscallStop {
			sig = int(ws.StopSignal())
		}
		if err := t.cont(sig); err != nil {
			return err
		}
	}
}

// cont resumes the thread with PTRACE_CONT, delivering sig if not 0.
func (t *tracee) cont(sig int) error {
	if err := ptrace(unix.PTRACE_CONT, t.tid, 0, uintptr(sig)); err != nil {
		return t.lost(syscallErr("ptrace(PTRACE_CONT)", t.tid, err))
	}
	t.running = true
	return nil
}

// wait waits for the thread's next stop or its death.
func (t *tracee) wait(limit time.Time, cancel <-chan struct{}) (unix.WaitStatus, error) {
	ws, err := waitStop(t.tid, limit, cancel)
	if err != nil {
		return ws, err
	}
	if ws.Exited() || ws.Signaled() {
		t.attached, t.detached, t.running = false, true, false
		return ws, fmt.Errorf("%w: thread %d %s", ErrTargetExited, t.tid, describeStatus(ws))
	}
	t.running = false
	t.stops++
	return ws, nil
}

// lost turns ESRCH from a ptrace request into ErrTargetExited when the
// thread is really gone: killed threads leave a status to collect.
func (t *tracee) lost(err error) error {
	if err == nil || !errors.Is(err, unix.ESRCH) {
		return err
	}
	ws, werr := waitStop(t.tid, time.Now().Add(restoreGrace), nil)
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

// waitStop waits for thread tid's next ptrace stop or its death, until
// limit or cancel. wait4 cannot be interrupted, so it polls with WNOHANG:
// first a spin that yields the CPU between polls, since an injected call
// stops again within microseconds, then sleeps that double from
// pollMinSleep to pollMaxSleep. It never waits for any pid but the one
// given: wait4(-1) would steal other children's and tracees' events.
//
// It does not use SIGCHLD. The kernel sends the tracer one for every ptrace
// stop, and in a Go program each one runs the runtime's signal handler on
// some thread, often one it must first wake on another CPU: that cost more
// than the stops themselves (see docs/benchmarks.md). While an injection
// runs the process's SIGCHLD action carries SA_NOCLDSTOP (quietStops), so
// stops raise no signal; exits still do, and wait4 sees stops either way.
const (
	spinPolls    = 200
	pollMinSleep = 20 * time.Microsecond
	pollMaxSleep = time.Millisecond
)

func waitStop(tid int, limit time.Time, cancel <-chan struct{}) (unix.WaitStatus, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	sleep := pollMinSleep
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
		d := time.Until(limit)
		if d <= 0 {
			// Poll once more before giving up: the stop may have come.
			expired = true
			continue
		}
		d = min(d, sleep)
		sleep = min(2*sleep, pollMaxSleep)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-cancel:
			return ws, fmt.Errorf("%w while waiting for thread %d to stop", ErrCanceled, tid)
		}
	}
}

// quietStops sets SA_NOCLDSTOP on the process's SIGCHLD action while at
// least one injection runs, and takes it off again after the last one
// closes if it was not there before. Only the flag changes: the handler
// (the Go runtime's), its mask and restorer stay as they are, and children
// that exit still raise SIGCHLD.
var quietStops cldStop

type cldStop struct {
	mu    sync.Mutex
	users int
	added bool
}

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on amd64
// and arm64 (both define SA_RESTORER).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	saNoCldStop = 0x1
	sigDfl      = 0
	sigIgn      = 1
)

func rtSigaction(sig unix.Signal, act, old *kernelSigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func (c *cldStop) acquire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users++
	if c.users > 1 {
		return
	}
	var act kernelSigaction
	// SIG_DFL and SIG_IGN drop SIGCHLD before it reaches any thread.
	if rtSigaction(unix.SIGCHLD, nil, &act) != nil || act.handler == sigDfl || act.handler == sigIgn || act.flags&saNoCldStop != 0 {
		return
	}
	act.flags |= saNoCldStop
	c.added = rtSigaction(unix.SIGCHLD, &act, nil) == nil
}

func (c *cldStop) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users--
	if c.users > 0 || !c.added {
		return
	}
	c.added = false
	var act kernelSigaction
	if rtSigaction(unix.SIGCHLD, nil, &act) != nil || act.flags&saNoCldStop == 0 {
		return
	}
	act.flags &^= saNoCldStop
	rtSigaction(unix.SIGCHLD, &act, nil)
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
		if tracer, _ := TracerPid(tid); tracer > 0 {
			return fmt.Errorf("%w: already traced by pid %d", base, tracer)
		}
		return fmt.Errorf("%w: not permitted: the hook needs CAP_SYS_PTRACE over the target's user namespace, and YAMA ptrace_scope must be below 3", base)
	}
	return base
}
