package keyring

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Text as the kernel writes it ("%5u: %5d %d/%d %d/%d %d/%d").
const sampleKeyUsers = `    0:    91 90/90 37/1000000 1102/25000000
 1000:     5 4/4 4/200 98/20000
100000:   201 200/199 200/200 14070/20000
`

func TestParseKeyUsers(t *testing.T) {
	got, err := ParseKeyUsers(strings.NewReader(sampleKeyUsers))
	if err != nil {
		t.Fatal(err)
	}
	want := []KeyUser{
		{UID: 0, Usage: 91, Keys: 90, Instantiated: 90, QuotaKeys: 37, MaxKeys: 1000000, QuotaBytes: 1102, MaxBytes: 25000000},
		{UID: 1000, Usage: 5, Keys: 4, Instantiated: 4, QuotaKeys: 4, MaxKeys: 200, QuotaBytes: 98, MaxBytes: 20000},
		{UID: 100000, Usage: 201, Keys: 200, Instantiated: 199, QuotaKeys: 200, MaxKeys: 200, QuotaBytes: 14070, MaxBytes: 20000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseKeyUsers =\n%+v\nwant\n%+v", got, want)
	}
	if k, b := got[2].Room(); k != 0 || b != 5930 {
		t.Errorf("Room of %+v = %d keys, %d bytes; want 0, 5930", got[2], k, b)
	}
	if f := got[2].Fill(); f != 1 {
		t.Errorf("Fill of an exhausted key quota = %v, want 1", f)
	}
	if f := got[1].Fill(); f != 0.02 {
		t.Errorf("Fill of 4/200 keys, 98/20000 bytes = %v, want 0.02", f)
	}
}

func TestParseKeyUsersRejects(t *testing.T) {
	for _, bad := range []string{
		"0 91 90/90 37/1000000 1102/25000000",  // no colon
		"x: 91 90/90 37/1000000 1102/25000000", // uid
		"0: 91 90/90 37/1000000",               // a field short
		"0: 91 90/90 37-1000000 1102/25000000", // no slash
		"0: 91 90/90 37/lots 1102/25000000",    // not a number
	} {
		if _, err := ParseKeyUsers(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseKeyUsers(%q) succeeded", bad)
		}
	}
}

// The running kernel's file parses, and shows the process's own uid once
// it owns a key: its user keyring, created here if need be.
func TestParseKeyUsersLive(t *testing.T) {
	if _, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, true); err != nil {
		t.Fatalf("keyctl(KEYCTL_GET_KEYRING_ID, @u, create): %v", err)
	}
	f, err := os.Open("/proc/key-users")
	if err != nil {
		t.Skipf("no /proc/key-users: %v", err)
	}
	defer f.Close()
	users, err := ParseKeyUsers(f)
	if err != nil {
		t.Fatal(err)
	}
	uid := uint32(os.Getuid())
	for _, u := range users {
		if u.UID == uid {
			if u.MaxKeys <= 0 || u.QuotaKeys > u.MaxKeys {
				t.Errorf("implausible quota %+v", u)
			}
			return
		}
	}
	t.Errorf("/proc/key-users has no line for uid %d, which owns a user keyring: %+v", uid, users)
}

func TestKeyringCost(t *testing.T) {
	// A container id of 64 hex characters: 65 bytes, as in design.md §1
	// ("_ses.<64 hex>" is 70).
	if k, b := KeyringCost(strings.Repeat("a", 64)); k != 1 || b != 65 {
		t.Errorf("KeyringCost(64 chars) = %d, %d; want 1, 65", k, b)
	}
	if _, b := KeyringCost("_ses." + strings.Repeat("a", 64)); b != 70 {
		t.Errorf("KeyringCost(_ses.<64>) = %d bytes, want 70", b)
	}
}
