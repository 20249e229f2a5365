package keyring

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Session returns the serial and description of the calling thread's
// session keyring. Session keyrings belong to threads: callers that mean a
// particular thread lock their goroutine to it first.
func Session() (int32, Description, error) {
	id, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	if err != nil {
		return 0, Description{}, fmt.Errorf("keyctl(KEYCTL_GET_KEYRING_ID, @s): %w", err)
	}
	s, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		return int32(id), Description{}, fmt.Errorf("keyctl(KEYCTL_DESCRIBE, %d): %w", id, err)
	}
	d, err := ParseDescription(s)
	return int32(id), d, err
}
