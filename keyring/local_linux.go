package keyring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LocalThread is a Syscaller that makes the calls in the calling OS thread.
// Keyring calls change only the calling thread's credentials, so callers
// lock the goroutine to its thread (runtime.LockOSThread) and let that
// thread exit afterwards rather than hand it back to the scheduler.
type LocalThread struct {
	page []byte
}

// NewLocalThread maps the scratch page. Close unmaps it.
func NewLocalThread() (*LocalThread, error) {
	page, err := unix.Mmap(-1, 0, ScratchSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap scratch page: %w", err)
	}
	return &LocalThread{page: page}, nil
}

// Close unmaps the scratch page.
func (l *LocalThread) Close() error { return unix.Munmap(l.page) }

// Syscall implements Syscaller.
func (l *LocalThread) Syscall(nr uintptr, args ...uintptr) (uintptr, error) {
	var a [6]uintptr
	copy(a[:], args)
	r, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// Scratch implements Syscaller.
func (l *LocalThread) Scratch() (uintptr, error) {
	return uintptr(unsafe.Pointer(&l.page[0])), nil
}

// WriteMemory implements Syscaller.
func (l *LocalThread) WriteMemory(addr uintptr, b []byte) error {
	off, err := l.offset(addr, len(b))
	if err != nil {
		return err
	}
	copy(l.page[off:], b)
	return nil
}

// ReadMemory implements Syscaller.
func (l *LocalThread) ReadMemory(addr uintptr, b []byte) error {
	off, err := l.offset(addr, len(b))
	if err != nil {
		return err
	}
	copy(b, l.page[off:])
	return nil
}

func (l *LocalThread) offset(addr uintptr, n int) (int, error) {
	base := uintptr(unsafe.Pointer(&l.page[0]))
	if addr < base || addr+uintptr(n) > base+uintptr(len(l.page)) {
		return 0, fmt.Errorf("address %#x+%d outside the scratch page %#x+%d", addr, n, base, len(l.page))
	}
	return int(addr - base), nil
}
