package keyring

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// countingSyscaller counts the calls the install makes the thread run.
type countingSyscaller struct {
	Syscaller
	calls  int
	before func(n int) // runs before each call
}

func (c *countingSyscaller) Syscall(nr uintptr, args ...uintptr) (uintptr, error) {
	if c.before != nil {
		c.before(c.calls)
	}
	c.calls++
	return c.Syscaller.Syscall(nr, args...)
}

func (c *countingSyscaller) Scratch() (uintptr, error) {
	c.calls++ // the mmap the first use makes
	return c.Syscaller.Scratch()
}

// sleeper starts sleep(1) in nanosleep, with SIGTRAP ignored when ignore is
// set (SIG_IGN survives execve).
func sleeper(t *testing.T, ignore bool) *exec.Cmd {
	t.Helper()
	script := "exec sleep 600"
	if ignore {
		script = "trap '' TRAP; " + script
	}
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		line := standin.SyscallLine(cmd.Process.Pid)
		if f := strings.Fields(line); len(f) > 0 && (f[0] == fmt.Sprint(unix.SYS_CLOCK_NANOSLEEP) || f[0] == fmt.Sprint(unix.SYS_NANOSLEEP)) {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep not in nanosleep: %s", standin.State(cmd.Process.Pid))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func signalFields(t *testing.T, pid int) string {
	t.Helper()
	var out []string
	for _, f := range []string{"SigBlk", "SigIgn", "SigCgt", "SigPnd", "ShdPnd"} {
		v, err := standin.StatusField(pid, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f+"="+v)
	}
	return strings.Join(out, " ")
}

// On amd64 the engine single-steps over each call (one stop per call)
// unless the target ignores SIGTRAP, where the kernel's step trap would
// reset that to SIG_DFL: it then takes an entry and an exit stop. Either
// way the target's signal state is as it was.
func TestStepLeavesSIGTRAPAlone(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresCommand(t, "sleep")
	for _, tc := range []struct {
		name   string
		start  func(t *testing.T) int
		stepOK bool // the target may be single-stepped
	}{
		{"default", func(t *testing.T) int { return sleeper(t, false).Process.Pid }, true},
		{"ignored", func(t *testing.T) int { return sleeper(t, true).Process.Pid }, false},
		{"caught-go", func(t *testing.T) int { return standin.Start(t, standin.GoRead).Pid }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid := tc.start(t)
			before := signalFields(t, pid)
			var c *countingSyscaller
			tm, err := Inject(pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
				c = &countingSyscaller{Syscaller: s}
				_, err := Install(c, Request{Mode: Named, Name: fmt.Sprintf("okh-step-%d", pid), Perm: DefaultPerm})
				return err
			})
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			calls := c.calls + 1 // and the munmap on leave
			want := 1 + 2*calls  // the interrupt, then entry and exit per call
			if singleStepCalls && tc.stepOK {
				want = 1 + calls
			}
			if tm.Stops != want {
				t.Errorf("%d calls took %d stops, want %d (single-step: %v)", calls, tm.Stops, want, singleStepCalls && tc.stepOK)
			}
			if standin.TracerPid(pid) != 0 {
				t.Fatalf("still traced: %s", standin.State(pid))
			}
			if after := signalFields(t, pid); after != before {
				t.Errorf("signal state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// A SIGTRAP that some process sends while the engine works is not lost: it
// stops the thread for the engine (SIGTRAP is not blocked while stepping),
// is held back and reaches the target after it is restored. sleep(1) does
// not handle SIGTRAP, so it must die of it.
func TestStepForeignSIGTRAPDelivered(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.RequiresCommand(t, "sleep")
	for _, how := range []string{"tgkill", "kill"} {
		t.Run(how, func(t *testing.T) {
			cmd := sleeper(t, false)
			pid := cmd.Process.Pid
			_, err := Inject(pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
				c := &countingSyscaller{Syscaller: s, before: func(n int) {
					if n != 2 {
						return
					}
					if how == "tgkill" {
						unix.Tgkill(pid, pid, unix.SIGTRAP)
					} else {
						unix.Kill(pid, unix.SIGTRAP)
					}
				}}
				_, err := Install(c, Request{Mode: Anonymous, Perm: DefaultPerm})
				return err
			})
			if err != nil {
				t.Fatalf("Inject: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("sleep ended with %v; want death by SIGTRAP", err)
				}
				ws := ee.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != syscall.SIGTRAP {
					t.Errorf("sleep ended with %v; want death by SIGTRAP", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the SIGTRAP sent while held was lost: %s", standin.State(pid))
			}
		})
	}
}
