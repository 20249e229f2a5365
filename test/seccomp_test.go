package test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSeccompDeniesKeyctl: a seccomp profile that denies the keyring
// system calls to the container (as Docker's default profile does) does
// not stop the hook, whose calls are made before the runtime loads the
// profile; the container itself then cannot use keyctl (the probe cannot
// even describe its keyring), and it still starts and runs to its end.
func TestSeccompDeniesKeyctl(t *testing.T) {
	for _, rt := range []Runtime{runcNoNew, runcDefault, crunDefault} {
		t.Run(rt.String(), func(t *testing.T) {
			rt.require(t)
			c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart})
			c.editSpec(t, func(s *specs.Spec) {
				s.Linux.Seccomp = &specs.LinuxSeccomp{
					DefaultAction: specs.ActAllow,
					Syscalls: []specs.LinuxSyscall{{
						Names:    []string{"keyctl", "add_key", "request_key"},
						Action:   specs.ActErrno,
						ErrnoRet: ptr(uint(1)), // EPERM
					}},
				}
			})
			r := c.Run()
			if r.ExitCode != probeExit || !strings.Contains(r.Stdout, "probe-marker: "+probeMarker) {
				t.Fatalf("the container did not run to its end: %s", r)
			}
			rep, err := parseReport(r.Stdout)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rep.Session.Error, "operation not permitted") {
				t.Errorf("the profile did not deny keyctl to the container: @s %s", rep.Session)
			}
			log := c.Bundle.hookSuccess(t, c.ID)
			if log.Name != c.ID || log.Perm != permHook || log.Serial == 0 {
				t.Errorf("hook log: %s", log.Raw)
			}
		})
	}
}
