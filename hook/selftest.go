package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// selfTest installs a keyring, as the hook does, in a stand-in for a
// container's init: this binary re-executed as a child (see
// selftest_standin.go), blocked in read(2) with its main thread locked
// and not dumpable, like runc init. The stand-in then reports from that
// thread, so the check sees what the process really got.
type selfTest struct {
	cmd     *exec.Cmd // the stand-in, not started; its stdio and fd 3 are set here
	mode    keyring.Mode
	perm    keyring.Perm
	timeout time.Duration // bound on the injection, as --timeout
	bound   time.Duration // bound on everything, the injection included
}

// selfTestResult is what a passing self-test measured.
type selfTestResult struct {
	Pid     int
	Result  keyring.Result
	Timings keyring.Timings
	Total   time.Duration
}

// standinCommand re-executes this binary as the stand-in. /proc/self/exe
// is the running binary even if the file was replaced since.
func standinCommand() *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", standinArg)
	cmd.Args[0] = "oci-keyring-hook"
	return cmd
}

// check runs the self-test and turns the outcome into a report line.
func (s selfTest) check() checkResult {
	r := checkResult{Check: "self-test"}
	res, err := s.run()
	if err != nil {
		r.Status, r.Detail = statusFail, oneLine(err)
		switch {
		case errors.Is(err, unix.EPERM):
			r.Fix = "run the hook as root: it needs CAP_SYS_PTRACE to enter a container's init, and YAMA ptrace_scope below 3"
		case errors.Is(err, unix.EDQUOT):
			r.Fix = "raise the key quota: kernel.keys.root_maxkeys and root_maxbytes (sysctl)"
		default:
			r.Fix = "the hook would fail the same way on every container: see the error"
		}
		return r
	}
	r.Status = statusOK
	r.Detail = fmt.Sprintf("stand-in init (pid %d) got keyring %d %q perm %s, finished its read and is untraced; enter %v, install %v, leave %v, total %v",
		res.Pid, res.Result.Serial, res.Result.Desc.Name, res.Result.Desc.Perm, res.Timings.Enter.Round(time.Microsecond), res.Timings.Work.Round(time.Microsecond), res.Timings.Leave.Round(time.Microsecond), res.Total.Round(time.Microsecond))
	r.Values = map[string]any{
		"serial": res.Result.Serial, "name": res.Result.Desc.Name, "perm": res.Result.Desc.Perm.String(),
		"enter_us": res.Timings.Enter.Microseconds(), "install_us": res.Timings.Work.Microseconds(),
		"leave_us": res.Timings.Leave.Microseconds(), "total_us": res.Total.Microseconds(),
	}
	return r
}

// run starts the stand-in, installs the keyring, releases the stand-in
// and checks its report. The stand-in is reaped before run returns, and
// killed first on any failure.
func (s selfTest) run() (res selfTestResult, err error) {
	start := time.Now()
	deadline := start.Add(s.bound)

	trigR, trigW, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("pipe2: %w", err)
	}
	defer trigW.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		trigR.Close()
		return res, fmt.Errorf("pipe2: %w", err)
	}
	defer outR.Close()
	var stderr bytes.Buffer
	s.cmd.Stdin, s.cmd.Stdout, s.cmd.Stderr = nil, outW, &stderr
	s.cmd.ExtraFiles = []*os.File{trigR}
	err = s.cmd.Start()
	trigR.Close()
	outW.Close()
	if err != nil {
		return res, fmt.Errorf("starting the stand-in %s: %w", s.cmd.Path, err)
	}
	res.Pid = s.cmd.Process.Pid
	defer func() {
		if err != nil {
			s.cmd.Process.Kill()
		}
		// Never wait while attached: a wait for our child would also
		// collect its ptrace stops. Inject has detached by now.
		reaped, werr := waitBounded(s.cmd, time.Until(deadline)+time.Second)
		if werr != nil && err == nil {
			err = werr
		}
		if err != nil && reaped && stderr.Len() > 0 {
			err = fmt.Errorf("%w (stand-in stderr: %s)", err, oneLineText(stderr.String()))
		}
	}()

	outR.SetReadDeadline(deadline)
	lines := bufio.NewReader(outR)
	line, err := lines.ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("stand-in (pid %d) did not start: %w (read %q)", res.Pid, err, line)
	}
	if strings.TrimSpace(line) != standinReady {
		return res, fmt.Errorf("stand-in (pid %d) did not start: it printed %q, want %q", res.Pid, line, standinReady)
	}
	if err := waitBlockedInRead(res.Pid, deadline); err != nil {
		return res, err
	}

	req := keyring.Request{Mode: s.mode, Perm: s.perm}
	if s.mode == keyring.Named {
		req.Name = fmt.Sprintf("okh-check-%d", res.Pid)
	}
	res.Timings, err = keyring.Inject(res.Pid, keyring.Options{
		Timeout: min(s.timeout, time.Until(deadline)),
		Verify:  func() error { return isChildOfSelf(res.Pid) },
	}, func(sc keyring.Syscaller) error {
		var err error
		res.Result, err = keyring.Install(sc, req)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("installing a keyring in the stand-in (pid %d): %w", res.Pid, err)
	}
	switch tracer, err := keyring.TracerPid(res.Pid); {
	case err != nil:
		return res, fmt.Errorf("stand-in (pid %d): cannot read its TracerPid after the hook detached: %w", res.Pid, err)
	case tracer != 0:
		return res, fmt.Errorf("stand-in (pid %d) still traced by %d after the hook detached", res.Pid, tracer)
	}

	payload := fmt.Sprintf("okh-check-payload-%d", res.Pid)
	trigW.SetWriteDeadline(deadline)
	if _, err := trigW.Write([]byte(payload)); err != nil {
		return res, fmt.Errorf("releasing the stand-in (pid %d): %w", res.Pid, err)
	}
	line, err = lines.ReadString('\n')
	if err != nil {
		return res, fmt.Errorf("stand-in (pid %d) did not report after its read: %w (got %q)", res.Pid, err, line)
	}
	var rep standinReport
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return res, fmt.Errorf("stand-in (pid %d) report %q: %w", res.Pid, line, err)
	}
	res.Total = time.Since(start)
	return res, verifyStandin(rep, res, payload)
}

// verifyStandin compares what the stand-in saw with what Install said.
func verifyStandin(rep standinReport, res selfTestResult, payload string) error {
	var problems []string
	if rep.Err != "" {
		problems = append(problems, rep.Err)
	}
	if rep.Tid != rep.Pid || rep.Pid != res.Pid {
		problems = append(problems, fmt.Sprintf("reported from thread %d of pid %d, want the main thread of %d", rep.Tid, rep.Pid, res.Pid))
	}
	if rep.Ret != len(payload) || rep.Data != payload {
		problems = append(problems, fmt.Sprintf("its read(2) returned %d (errno %d) with %q, want %d bytes %q: the interrupted call was not restored", rep.Ret, rep.Errno, rep.Data, len(payload), payload))
	}
	if want := res.Result.Desc.String(); rep.Serial != res.Result.Serial || rep.Keyring != want {
		problems = append(problems, fmt.Sprintf("its session keyring is %d %q, the hook installed %d %q", rep.Serial, rep.Keyring, res.Result.Serial, want))
	}
	if rep.TracerPid != 0 {
		problems = append(problems, fmt.Sprintf("still traced by %d after its read", rep.TracerPid))
	}
	if len(problems) > 0 {
		return fmt.Errorf("stand-in (pid %d): %s", res.Pid, strings.Join(problems, "; "))
	}
	return nil
}

// waitBlockedInRead waits until pid's main thread sleeps in read(2).
// Without privileges /proc/<pid>/syscall of a process that is not dumpable
// cannot be read; then the sleeping state has to do (the attach that
// follows fails anyway).
func waitBlockedInRead(pid int, deadline time.Time) error {
	var last string
	for time.Now().Before(deadline) {
		st, err := keyring.ReadProcStat(pid)
		if err != nil {
			return fmt.Errorf("stand-in (pid %d): %w", pid, err)
		}
		last = fmt.Sprintf("state %c", st.State)
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		switch {
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			if st.State == 'S' {
				return nil
			}
		case err != nil:
			return fmt.Errorf("stand-in (pid %d): %w", pid, err)
		default:
			f := strings.Fields(string(b))
			last += fmt.Sprintf(", /proc/%d/syscall %q", pid, strings.TrimSpace(string(b)))
			if st.State == 'S' && len(f) > 0 && f[0] == strconv.Itoa(unix.SYS_READ) {
				return nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("stand-in (pid %d) not blocked in read(2) in time: %s", pid, last)
}

// isChildOfSelf is the self-test's guard: the hook's guard (the target is
// its sibling) does not fit a target the check started itself.
func isChildOfSelf(pid int) error {
	st, err := keyring.ReadProcStat(pid)
	if err != nil {
		return fmt.Errorf("%w: pid %d: %w", keyring.ErrBadTarget, pid, err)
	}
	if st.PPid != os.Getpid() || st.State == 'Z' {
		return fmt.Errorf("%w: pid %d (parent %d, state %c) is not the stand-in this process started", keyring.ErrBadTarget, pid, st.PPid, st.State)
	}
	return nil
}

// waitBounded reaps cmd, killing it if it has not exited after d. It
// reports whether cmd was reaped, after which its output is complete.
func waitBounded(cmd *exec.Cmd, d time.Duration) (bool, error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return true, fmt.Errorf("stand-in (pid %d): %w", cmd.Process.Pid, err)
		}
		return true, nil
	case <-t.C:
		cmd.Process.Kill()
		return false, fmt.Errorf("stand-in (pid %d) did not exit within %v", cmd.Process.Pid, d)
	}
}
