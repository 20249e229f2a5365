package keyring

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities asks the kernel which keyring features it has. Kernels
// before 5.3 do not know KEYCTL_CAPABILITIES and fail with EOPNOTSUPP.
func Capabilities() (Caps, error) {
	buf := make([]byte, 16)
	n, _, errno := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_CAPABILITIES, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return nil, os.NewSyscallError("keyctl(KEYCTL_CAPABILITIES)", errno)
	}
	// The kernel returns the size of its whole table, which may exceed buf.
	return Caps(buf[:min(int(n), len(buf))]), nil
}
