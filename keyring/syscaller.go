package keyring

// ScratchSize is the size of the buffer a Syscaller lends for strings and
// results: one page.
const ScratchSize = 4096

// Syscaller performs system calls as one particular thread and moves bytes
// to and from that thread's memory. The install algorithm is written against
// it so that it runs the same in the calling thread (LocalThread) and inside
// a traced process (the ptrace engine).
type Syscaller interface {
	// Syscall makes system call nr with up to six arguments as the thread.
	// A failure is returned as a unix.Errno, so errors.Is works on it.
	Syscall(nr uintptr, args ...uintptr) (uintptr, error)
	// Scratch is the address, in the thread's memory, of ScratchSize
	// writable bytes the caller may use.
	Scratch() (uintptr, error)
	// WriteMemory copies b to addr in the thread's memory.
	WriteMemory(addr uintptr, b []byte) error
	// ReadMemory fills b from addr in the thread's memory.
	ReadMemory(addr uintptr, b []byte) error
}
