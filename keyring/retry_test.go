package keyring

import (
	"testing"
	"time"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// A target still running its own code when the hook arrives, as a
// container's init on its way to the sync pipe can be under load, is let
// run on and stopped again until it blocks in a system call; then it gets
// its keyring like any other.
func TestInjectLooksAgainUntilInSyscall(t *testing.T) {
	testutil.RequiresRoot(t)
	p := standin.StartBusyThenRead(t)
	var res Result
	tm, err := Inject(p.Pid, Options{Timeout: 10 * time.Second}, func(s Syscaller) error {
		var err error
		res, err = Install(s, Request{Mode: Named, Name: uniqueName(t), Perm: DefaultPerm})
		return err
	})
	if err != nil {
		t.Fatalf("Inject: %v (target: %s)", err, standin.State(p.Pid))
	}
	if tm.Retries == 0 {
		t.Errorf("the first stop, with the target in its own code, was taken as a system call: %+v", tm)
	}
	t.Logf("looked %d times; enter %v", tm.Retries+1, tm.Enter)
	waitUntraced(t, p.Pid)
	finishUnchanged(t, p, res.Serial)
}
