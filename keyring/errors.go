package keyring

import (
	"errors"
	"fmt"
)

// ErrUnsupportedTarget means the thread is in a state the hook will not
// enter (not blocked in a system call, wrong architecture): nothing was
// changed.
var ErrUnsupportedTarget = errors.New("unsupported target state")

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupportedTarget, fmt.Sprintf(format, args...))
}
