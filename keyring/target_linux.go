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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
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
	for p, depth := os.Getppid(), 0; p > 0 && depth < 4096; depth++ {
		if p == pid {
			return fmt.Errorf("%w: pid %d is an ancestor of the hook (pid %d)", ErrBadTarget, pid, self)
		}
		st, err := ReadProcStat(p)
		if err != nil {
			break
		}
		p = st.PPid
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
	if parent := os.Getppid(); st.PPid != parent {
		return fmt.Errorf("%w: pid %d (%s) is a child of pid %d, not of the runtime that ran the hook (pid %d); a runtime hook only enters the container it was run for",
			ErrBadTarget, pid, st.Comm, st.PPid, parent)
	}
	return nil
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

// tracerPid returns the TracerPid of /proc/<pid>/status, 0 if none or unknown.
func tracerPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
