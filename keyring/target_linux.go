package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrBadTarget means the pid is not a process the hook may enter; nothing
// was touched.
var ErrBadTarget = errors.New("refusing target")

// ProcStat holds the fields of /proc/<pid>/stat the guards need.
type ProcStat struct {
	Pid   int
	Comm  string
	State byte
	PPid  int
}

// ReadProcStat reads /proc/<pid>/stat. The command name may contain spaces
// and parentheses, so the fields are taken after the last ')'.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := readProc(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return parseProcStat(pid, b)
}

func parseProcStat(pid int, b []byte) (ProcStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: malformed: %q", pid, b)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: malformed: %q", pid, b)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: parent pid: %w", pid, err)
	}
	return ProcStat{Pid: pid, Comm: string(b[open+1 : end]), State: f[0][0], PPid: ppid}, nil
}

// CheckTarget refuses any pid that is not the container's init as a hook
// sees it: a live process other than init, the hook, or any ancestor of the
// hook, whose parent is the hook's parent (the runtime that runs both).
func CheckTarget(pid int) error {
	if pid <= 1 {
		return fmt.Errorf("%w: pid %d: the container's init always has a pid above 1", ErrBadTarget, pid)
	}
	self := os.Getpid()
	if pid == self {
		return fmt.Errorf("%w: pid %d is the hook itself", ErrBadTarget, pid)
	}
	st, err := ReadProcStat(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: pid %d: no such process", ErrBadTarget, pid)
		}
		return fmt.Errorf("%w: pid %d: %w", ErrBadTarget, pid, err)
	}
	if st.State == 'Z' || st.State == 'X' {
		return fmt.Errorf("%w: pid %d (%s) has exited (state %c)", ErrBadTarget, pid, st.Comm, st.State)
	}
	// /proc/<tid> exists for every thread, and a thread's parent is its
	// process's: without this check the hook would enter a side thread and
	// leave the thread that execs the container's program as it was.
	if tgid, err := threadGroup(pid); err != nil {
		return fmt.Errorf("%w: pid %d: %w", ErrBadTarget, pid, err)
	} else if tgid != pid {
		return fmt.Errorf("%w: pid %d (%s) is a thread of process %d, not a process; the runtime names the container's init by its process id",
			ErrBadTarget, pid, st.Comm, tgid)
	}
	if parent := os.Getppid(); st.PPid != parent {
		// An ancestor of the hook is never a child of the hook's parent,
		// so the walk up the tree is only needed to name the refusal.
		if isAncestor(pid) {
			return fmt.Errorf("%w: pid %d is an ancestor of the hook (pid %d)", ErrBadTarget, pid, self)
		}
		return fmt.Errorf("%w: pid %d (%s) is a child of pid %d, not of the runtime that ran the hook (pid %d); a runtime hook only enters the container it was run for",
			ErrBadTarget, pid, st.Comm, st.PPid, parent)
	}
	return nil
}

// isAncestor reports whether pid is the hook's parent or one of its
// ancestors.
func isAncestor(pid int) bool {
	for p, depth := os.Getppid(), 0; p > 0 && depth < 4096; depth++ {
		if p == pid {
			return true
		}
		st, err := ReadProcStat(p)
		if err != nil {
			break
		}
		p = st.PPid
	}
	return false
}

// SameUserNamespace reports whether pid shares the hook's user namespace.
// Without a user namespace of its own a container's user keyring (@u) is
// the host's _uid.<uid>, whatever its session keyring.
func SameUserNamespace(pid int) (bool, error) {
	var self, target unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &self); err != nil {
		return false, fmt.Errorf("stat /proc/self/ns/user: %w", err)
	}
	p := fmt.Sprintf("/proc/%d/ns/user", pid)
	if err := unix.Stat(p, &target); err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	return self.Dev == target.Dev && self.Ino == target.Ino, nil
}

// threadGroup returns the Tgid of /proc/<pid>/status: the process the
// thread pid belongs to. pidfd_open(2) answers the common case, a process,
// in two cheap calls: it refuses any thread other than a thread-group
// leader (EINVAL). Every other answer, or a kernel without it, reads status.
func threadGroup(pid int) (int, error) {
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		unix.Close(fd)
		return pid, nil
	}
	return statusInt(pid, "Tgid")
}

// readProc reads a small /proc file with plain system calls; os.ReadFile
// would also try, and fail, to register the descriptor with the runtime's
// poller, which costs as many calls again on the hook's hot path.
func readProc(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 2048)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return b, nil
		}
		b = b[:len(b)+n]
	}
}

// readStatus reads /proc/<pid>/status.
func readStatus(pid int) ([]byte, error) {
	return readProc("/proc/" + strconv.Itoa(pid) + "/status")
}

// StatusField returns the value of field key ("Tgid", "TracerPid", ...) in
// the text of a /proc/<pid>/status file.
func StatusField(status []byte, key string) (string, bool) {
	for len(status) > 0 {
		var line []byte
		line, status, _ = bytes.Cut(status, []byte("\n"))
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(k) == key {
			return string(bytes.TrimSpace(v)), true
		}
	}
	return "", false
}

// statusInt returns the decimal field key of /proc/<pid>/status.
func statusInt(pid int, key string) (int, error) {
	b, err := readStatus(pid)
	if err != nil {
		return 0, err
	}
	v, ok := StatusField(b, key)
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status: no %s line", pid, key)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
	}
	return n, nil
}

// TracerPid returns the TracerPid of /proc/<pid>/status: 0 when pid is
// not traced.
func TracerPid(pid int) (int, error) { return statusInt(pid, "TracerPid") }
