package keyring

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Mode chooses between a named and an anonymous session keyring.
type Mode int

const (
	// Named joins a keyring of a given name, created fresh.
	Named Mode = iota
	// Anonymous installs a new keyring the kernel names "_ses".
	Anonymous
)

func (m Mode) String() string {
	if m == Anonymous {
		return "anonymous"
	}
	return "named"
}

// AnonymousName is the description the kernel gives an anonymous session
// keyring (install_session_keyring_to_cred).
const AnonymousName = "_ses"

// MaxNameLen is the longest keyring name the hook accepts; the kernel takes
// up to 4095 bytes but every name costs key quota.
const MaxNameLen = 255

// Request says which session keyring to install.
type Request struct {
	Mode Mode
	Name string // required in Named mode
	Perm Perm
}

// Result describes the session keyring that was installed.
type Result struct {
	Serial    int32
	Anonymous int32 // serial of the anonymous keyring joined first
	Desc      Description
}

// Sentinel errors of Install; the wrapped error carries the values.
var (
	// ErrNotFresh means the keyring joined by name already existed: someone
	// else could hold it, so it is not private.
	ErrNotFresh = errors.New("keyring joined by name is not freshly created")
	// ErrVerify means the thread's session keyring is not what was asked for
	// after the install.
	ErrVerify = errors.New("session keyring verification failed")
)

// keyctl operations and special key ids, from <linux/keyctl.h>.
const (
	keyctlGetKeyringID       = 0
	keyctlJoinSessionKeyring = 1
	keyctlSetperm            = 5
	keyctlDescribe           = 6

	keySpecSessionKeyring = -3
)

// Offsets within the scratch page.
const (
	scratchName     = 0   // the name to join, NUL-terminated
	scratchDescribe = 512 // KEYCTL_DESCRIBE output
)

// Install gives the thread behind s a new private session keyring, in the
// order of design.md §3: join a new anonymous keyring (dropping whatever the
// runtime handed down), join the name if asked and check that it was created
// just now, set the permissions, then verify.
func Install(s Syscaller, req Request) (Result, error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	var res Result
	anon, err := keyctl(s, keyctlJoinSessionKeyring, 0)
	if err != nil {
		return res, joinErr("keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)", AnonymousName, err)
	}
	if int32(anon) <= 0 {
		return res, fmt.Errorf("%w: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL) returned %d, not a new keyring's serial", ErrVerify, int32(anon))
	}
	res.Anonymous = int32(anon)
	res.Serial = int32(anon)

	scratch, err := s.Scratch()
	if err != nil {
		return res, err
	}
	if req.Mode == Named {
		if err := s.WriteMemory(scratch+scratchName, append([]byte(req.Name), 0)); err != nil {
			return res, fmt.Errorf("writing keyring name %q: %w", req.Name, err)
		}
		serial, err := keyctl(s, keyctlJoinSessionKeyring, scratch+scratchName)
		if err != nil {
			return res, joinErr(fmt.Sprintf("keyctl(KEYCTL_JOIN_SESSION_KEYRING, %q)", req.Name), req.Name, err)
		}
		// 0 means "that is already your session keyring": not new.
		if serial == 0 || int32(serial) == res.Anonymous {
			return res, fmt.Errorf("%w: keyctl(KEYCTL_JOIN_SESSION_KEYRING, %q) returned %d, the thread's current session keyring", ErrNotFresh, req.Name, int32(serial))
		}
		res.Serial = int32(serial)
		d, err := describe(s, res.Serial, scratch+scratchDescribe)
		if err != nil {
			return res, err
		}
		// A keyring created by the join never grants a non-possessor search;
		// one found by name always does, or the join could not have found it.
		if d.Perm.NonPossessorSearch() {
			return res, fmt.Errorf("%w: %q (serial %d, owner uid %d, perm %s) already existed and is searchable by others; refusing to share it (choose another name with --name or the io.oci-keyring-hook.name annotation)",
				ErrNotFresh, req.Name, res.Serial, d.UID, d.Perm)
		}
	}
	if _, err := keyctl(s, keyctlSetperm, uintptr(uint32(res.Serial)), uintptr(req.Perm)); err != nil {
		return res, fmt.Errorf("keyctl(KEYCTL_SETPERM, %d, %s): %w", res.Serial, req.Perm, err)
	}

	id, err := keyctl(s, keyctlGetKeyringID, specID(keySpecSessionKeyring), 0)
	if err != nil {
		return res, fmt.Errorf("keyctl(KEYCTL_GET_KEYRING_ID, @s): %w", err)
	}
	if int32(id) != res.Serial {
		return res, fmt.Errorf("%w: @s is %d, want %d", ErrVerify, int32(id), res.Serial)
	}
	d, err := describe(s, res.Serial, scratch+scratchDescribe)
	if err != nil {
		return res, err
	}
	res.Desc = d
	want := req.Name
	if req.Mode == Anonymous {
		want = AnonymousName
	}
	if d.Type != "keyring" || d.Name != want || d.Perm != req.Perm {
		return res, fmt.Errorf("%w: @s (serial %d) is %q, want a keyring named %q with permissions %s", ErrVerify, res.Serial, d, want, req.Perm)
	}
	return res, nil
}

func (r Request) validate() error {
	if err := ValidateSessionPerm(r.Perm); err != nil {
		return err
	}
	switch r.Mode {
	case Anonymous:
	case Named:
		if r.Name == "" || len(r.Name) > MaxNameLen || r.Name[0] == '.' || bytes.IndexByte([]byte(r.Name), 0) >= 0 {
			return fmt.Errorf("keyring name %q: want 1 to %d bytes, no NUL, not starting with '.'", r.Name, MaxNameLen)
		}
	default:
		return fmt.Errorf("unknown keyring mode %d", r.Mode)
	}
	return nil
}

func keyctl(s Syscaller, args ...uintptr) (uintptr, error) {
	return s.Syscall(unix.SYS_KEYCTL, args...)
}

// specID passes a negative special key id the way the kernel reads it.
func specID(id int32) uintptr { return uintptr(int64(id)) }

// describe reads KEYCTL_DESCRIBE of serial through the buffer at buf.
func describe(s Syscaller, serial int32, buf uintptr) (Description, error) {
	const size = ScratchSize - scratchDescribe
	n, err := keyctl(s, keyctlDescribe, uintptr(uint32(serial)), buf, size)
	if err != nil {
		return Description{}, fmt.Errorf("keyctl(KEYCTL_DESCRIBE, %d): %w", serial, err)
	}
	if n == 0 || n > size {
		return Description{}, fmt.Errorf("keyctl(KEYCTL_DESCRIBE, %d): description of %d bytes does not fit %d", serial, n, size)
	}
	b := make([]byte, n)
	if err := s.ReadMemory(buf, b); err != nil {
		return Description{}, fmt.Errorf("reading description of key %d: %w", serial, err)
	}
	return ParseDescription(string(b))
}
