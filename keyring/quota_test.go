package keyring

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// scripted answers Syscall with the results in order and fakes memory.
type scripted struct {
	results []error // nil: success with serial 100+i
	n       int
}

func (s *scripted) Syscall(nr uintptr, args ...uintptr) (uintptr, error) {
	i := s.n
	s.n++
	if i < len(s.results) && s.results[i] != nil {
		return 0, s.results[i]
	}
	return uintptr(100 + i), nil
}
func (s *scripted) Scratch() (uintptr, error)         { return 0x1000, nil }
func (s *scripted) WriteMemory(uintptr, []byte) error { return nil }
func (s *scripted) ReadMemory(uintptr, []byte) error  { return nil }

// EDQUOT from either join is a *QuotaError naming the call and the name,
// and still errors.Is EDQUOT.
func TestInstallQuotaError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     Request
		results []error
		call    string
		keyring string
	}{
		{"anonymous join", Request{Mode: Named, Name: "c1", Perm: DefaultPerm}, []error{unix.EDQUOT}, "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)", AnonymousName},
		{"named join", Request{Mode: Named, Name: "c1", Perm: DefaultPerm}, []error{nil, unix.EDQUOT}, `keyctl(KEYCTL_JOIN_SESSION_KEYRING, "c1")`, "c1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Install(&scripted{results: tc.results}, tc.req)
			var qe *QuotaError
			if !errors.As(err, &qe) || !errors.Is(err, unix.EDQUOT) {
				t.Fatalf("Install: %v; want a *QuotaError wrapping EDQUOT", err)
			}
			if qe.Call != tc.call || qe.Name != tc.keyring {
				t.Errorf("QuotaError %+v; want call %q, name %q", qe, tc.call, tc.keyring)
			}
			for _, want := range []string{tc.call, "disk quota exceeded", KeyUsersPath, "kernel.keys.maxkeys", "kernel.keys.maxbytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q does not mention %q", err, want)
				}
			}
		})
	}
	// Other errors are not quota errors.
	_, err := Install(&scripted{results: []error{unix.EPERM}}, Request{Mode: Anonymous, Perm: DefaultPerm})
	var qe *QuotaError
	if errors.As(err, &qe) || !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM became %v", err)
	}
}

func TestQuotaErrorMessage(t *testing.T) {
	u := &KeyUser{UID: 300000, Usage: 201, Keys: 200, Instantiated: 200, QuotaKeys: 200, MaxKeys: 200, QuotaBytes: 1195, MaxBytes: 20000}
	for _, tc := range []struct {
		name string
		err  QuotaError
		want []string
	}{
		{"userns owner", QuotaError{Call: "keyctl(X)", Name: "okh-1", Err: unix.EDQUOT, OwnerKnown: true, Owner: 300000, Usage: u},
			[]string{"keyctl(X): disk quota exceeded", "uid 300000", "/proc/key-users shows 200/200 keys and 1195/20000 bytes in use",
				`a keyring named "okh-1" needs 1 key and 6 bytes`, "kernel.keys.maxkeys and kernel.keys.maxbytes", "user namespace"}},
		{"root owner", QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT, OwnerKnown: true, Owner: 0, Usage: &KeyUser{MaxKeys: 1000000}},
			[]string{"uid 0", "kernel.keys.root_maxkeys and kernel.keys.root_maxbytes"}},
		{"no line", QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT, OwnerKnown: true, Owner: 7},
			[]string{"uid 7", "/proc/key-users has no line for it"}},
		{"owner unknown", QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT, Unknown: "no such process"},
			[]string{"owner unknown: no such process", "kernel.keys.maxkeys", "root_maxkeys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("%q is not one line", msg)
			}
		})
	}
}

// ExplainQuota reads the owner from /proc/<pid>/status as the hook sees
// it: a process running with fsuid 300001 (as a container root mapped to
// that host uid would) is reported as uid 300001.
func TestExplainQuota(t *testing.T) {
	testutil.RequiresRoot(t)
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 300001, Gid: 300001}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	err := error(&QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT})
	wrapped := errors.Join(errors.New("installing"), err)
	ExplainQuota(wrapped, cmd.Process.Pid)
	var qe *QuotaError
	errors.As(wrapped, &qe)
	if !qe.OwnerKnown || qe.Owner != 300001 {
		t.Errorf("owner %+v, want uid 300001", qe)
	}

	// Our own process: root, which owns keys, so /proc/key-users has a line.
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Fatal(err)
	}
	qe = &QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT}
	ExplainQuota(qe, os.Getpid())
	if !qe.OwnerKnown || qe.Owner != 0 || qe.Usage == nil || qe.Usage.UID != 0 || qe.Usage.MaxKeys <= 0 {
		t.Errorf("own process: %+v (usage %+v); want uid 0 with its /proc/key-users line", qe, qe.Usage)
	}

	// A process that is gone: the owner is unknown, and the message says why.
	qe = &QuotaError{Call: "keyctl(X)", Name: "_ses", Err: unix.EDQUOT}
	ExplainQuota(qe, 1<<30)
	if qe.OwnerKnown || !strings.Contains(qe.Error(), "owner unknown") {
		t.Errorf("gone process: %v", qe)
	}
	// Not a quota error: nothing to explain, no panic.
	ExplainQuota(unix.EPERM, os.Getpid())
	ExplainQuota(nil, os.Getpid())
}
