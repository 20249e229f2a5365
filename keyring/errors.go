package keyring

import (
	"errors"
	"fmt"
)

// ErrUnsupportedTarget means the thread is in a state the hook will not
// enter (not blocked in a system call, wrong architecture): nothing was
// changed.
var ErrUnsupportedTarget = errors.New("unsupported target state")

// errNotInSyscall means the thread was stopped outside a system call, in
// its own code: no syscall instruction to borrow. Unlike the rest of
// ErrUnsupportedTarget it can pass; the engine looks again.
var errNotInSyscall = fmt.Errorf("%w: not stopped inside a system call", ErrUnsupportedTarget)

func notInSyscallf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errNotInSyscall, fmt.Sprintf(format, args...))
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupportedTarget, fmt.Sprintf(format, args...))
}
