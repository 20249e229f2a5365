// Command floor is the floor the hook is measured against: a static Go
// program that does nothing but two keyctl calls (join a new anonymous
// session keyring, set its permissions) and exits. Whatever a Go hook
// costs beyond this is the hook's own work. hack/bench also runs it as the
// container's program.
package main

import (
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	// KEYCTL_JOIN_SESSION_KEYRING with a NULL name: a new anonymous keyring.
	id, _, errno := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if errno != 0 {
		os.Exit(1)
	}
	if err := unix.KeyctlSetperm(int(id), 0x3f010000); err != nil {
		os.Exit(1)
	}
}
