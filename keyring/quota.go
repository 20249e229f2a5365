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

// KeyUsersPath is where the kernel reports each key owner's quota use.
const KeyUsersPath = "/proc/key-users"

// QuotaError is EDQUOT from a call that creates a keyring: the keyring's
// owner, the target's fsuid, has no key quota left. With a user namespace
// that owner is the container root's host uid, limited by
// kernel.keys.maxkeys and kernel.keys.maxbytes (200 keys, 20000 bytes by
// default); host root is limited by kernel.keys.root_maxkeys and
// root_maxbytes.
//
// Install returns it with Call, Name and Err; Explain, run from outside
// the target while it is held (its credentials cannot change), adds the
// owner and its line of /proc/key-users.
type QuotaError struct {
	Call string // the keyctl call that failed
	Name string // the keyring it would have created
	Err  error  // unix.EDQUOT

	OwnerKnown bool
	Owner      uint32   // the target's fsuid, as the hook (the host) sees it
	Usage      *KeyUser // Owner's line of /proc/key-users; nil if none
	Unknown    string   // why Owner or Usage are missing
}

func (e *QuotaError) Unwrap() error { return e.Err }

func (e *QuotaError) Error() string {
	var b strings.Builder
	keys, nbytes := KeyringCost(e.Name)
	fmt.Fprintf(&b, "%s: %v: ", e.Call, e.Err)
	if !e.OwnerKnown {
		fmt.Fprintf(&b, "the keyring owner's key quota is exhausted (a keyring named %q costs %d key and %d bytes); ", e.Name, keys, nbytes)
		if e.Unknown != "" {
			fmt.Fprintf(&b, "owner unknown: %s; ", e.Unknown)
		}
		b.WriteString("see " + KeyUsersPath + " and raise kernel.keys.maxkeys and kernel.keys.maxbytes (or root_maxkeys and root_maxbytes for uid 0)")
		return b.String()
	}
	fmt.Fprintf(&b, "the key quota of uid %d, which owns the container's keyrings, is exhausted: ", e.Owner)
	if u := e.Usage; u != nil {
		fmt.Fprintf(&b, "%s shows %d/%d keys and %d/%d bytes in use", KeyUsersPath, u.QuotaKeys, u.MaxKeys, u.QuotaBytes, u.MaxBytes)
	} else {
		fmt.Fprintf(&b, "%s has no line for it", KeyUsersPath)
		if e.Unknown != "" {
			fmt.Fprintf(&b, " (%s)", e.Unknown)
		}
	}
	fmt.Fprintf(&b, ", and a keyring named %q needs %d key and %d bytes; ", e.Name, keys, nbytes)
	maxKeys, maxBytes := "kernel.keys.maxkeys", "kernel.keys.maxbytes"
	if e.Owner == 0 {
		maxKeys, maxBytes = "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes"
	}
	fmt.Fprintf(&b, "raise the sysctls %s and %s, or free keys owned by uid %d", maxKeys, maxBytes, e.Owner)
	if e.Owner != 0 {
		b.WriteString(" (with a user namespace every container whose root maps to that uid shares its quota)")
	}
	return b.String()
}

// joinErr wraps the error of a KEYCTL_JOIN_SESSION_KEYRING call, which
// creates keyring name: EDQUOT becomes a *QuotaError.
func joinErr(call, name string, err error) error {
	if errors.Is(err, unix.EDQUOT) {
		return &QuotaError{Call: call, Name: name, Err: err}
	}
	return fmt.Errorf("%s: %w", call, err)
}

// ExplainQuota fills in the *QuotaError in err, if any, for target pid:
// the keyring owner (pid's fsuid, from /proc/<pid>/status as this process
// sees it) and that owner's line of /proc/key-users. Call it while the
// target is held, so its credentials cannot change meanwhile.
func ExplainQuota(err error, pid int) {
	var qe *QuotaError
	if !errors.As(err, &qe) {
		return
	}
	uid, ferr := FSUID(pid)
	if ferr != nil {
		qe.Unknown = ferr.Error()
		return
	}
	qe.OwnerKnown, qe.Owner = true, uid
	b, rerr := os.ReadFile(KeyUsersPath)
	if rerr != nil {
		qe.Unknown = rerr.Error()
		return
	}
	users, perr := ParseKeyUsers(bytes.NewReader(b))
	if perr != nil {
		qe.Unknown = perr.Error()
		return
	}
	for i := range users {
		if users[i].UID == uid {
			qe.Usage = &users[i]
			return
		}
	}
}

// FSUID returns the filesystem uid of pid (the fourth value of the Uid
// line of /proc/<pid>/status), which owns the keys pid creates. /proc
// shows it in the reader's user namespace: from the host, a container
// root's host uid.
func FSUID(pid int) (uint32, error) {
	b, err := readStatus(pid)
	if err != nil {
		return 0, err
	}
	v, ok := StatusField(b, "Uid")
	if !ok {
		return 0, fmt.Errorf("/proc/%d/status: no Uid line", pid)
	}
	f := strings.Fields(v)
	if len(f) != 4 {
		return 0, fmt.Errorf("/proc/%d/status: Uid line %q: want 4 uids", pid, v)
	}
	uid, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: fsuid: %w", pid, err)
	}
	return uint32(uid), nil
}
