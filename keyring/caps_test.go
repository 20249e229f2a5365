package keyring

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCapsDecoding(t *testing.T) {
	for _, tc := range []struct {
		name        string
		caps        Caps
		names, tags bool
	}{
		{"none", nil, false, false},
		{"byte 0 only", Caps{0xff}, false, false},
		{"ns keyring name", Caps{0x01, 0x01}, true, false},
		{"ns key tag", Caps{0x00, 0x02}, false, true},
		{"both and notifications", Caps{0xff, 0x07}, true, true},
		{"notifications only", Caps{0xff, 0x04}, false, false},
		{"longer table", Caps{0x01, 0x03, 0xff}, true, true},
	} {
		if got := tc.caps.NamespacedNames(); got != tc.names {
			t.Errorf("%s: NamespacedNames(% x) = %v, want %v", tc.name, []byte(tc.caps), got, tc.names)
		}
		if got := tc.caps.NamespaceTags(); got != tc.tags {
			t.Errorf("%s: NamespaceTags(% x) = %v, want %v", tc.name, []byte(tc.caps), got, tc.tags)
		}
	}
}

// The kernel sets KEYCTL_CAPS0_CAPABILITIES in every answer it gives.
func TestCapabilitiesLive(t *testing.T) {
	c, err := Capabilities()
	if errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("kernel older than 5.3: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(c) < 2 || c[0]&unix.KEYCTL_CAPS0_CAPABILITIES == 0 {
		t.Errorf("KEYCTL_CAPABILITIES returned % x: want at least 2 bytes with KEYCTL_CAPS0_CAPABILITIES set", []byte(c))
	}
	// Names became per user namespace in the same release as the op.
	if !c.NamespacedNames() {
		t.Errorf("KEYCTL_CAPABILITIES returned % x without KEYCTL_CAPS1_NS_KEYRING_NAME", []byte(c))
	}
}
