package keyring

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// TestInjectRestartsAtTheSyscall: the restored thread must resume exactly
// at its syscall instruction. The stand-ins of TestInjectStandins cannot
// tell: in glibc's syscall() and Go's Syscall6 the instruction before it is
// a register move that can run twice unnoticed. In c-read-bump it advances
// the buffer pointer, so resuming one instruction early shows in the data.
func TestInjectRestartsAtTheSyscall(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.Start(t, standin.CReadBump)
	res, err := installOnce(p.Pid, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Inject: %v (target: %s)", err, standin.State(p.Pid))
	}
	if err := standin.WaitBlocked(p.Pid, unix.SYS_READ, time.Second); err != nil {
		t.Errorf("target not back in its call: %v", err)
	}
	finishUnchanged(t, p, res.Serial)
}
