package keyring

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParseDescription: KEYCTL_DESCRIBE text comes from the kernel, but
// its last field is a name whoever created the key chose (";" included).
// Parsing never panics; what parses formats back to the same fields.
func FuzzParseDescription(f *testing.F) {
	for _, s := range []string{
		"keyring;0;0;3f010000;okh-1\x00",
		"keyring;100000;100000;3f130008;_ses.abc",
		"user;0;0;3f010000;a;b;c",
		"keyring;0;0;3f010000;",
		"keyring;-1;0;3f010000;x",
		"keyring;4294967296;0;3f010000;x",
		"keyring;0;0;0x3f;x",
		";0;0;0;x",
		"keyring;0;0;3f010000",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDescription(s)
		if err != nil {
			if !errors.Is(err, ErrBadDescription) {
				t.Fatalf("ParseDescription(%q) error %v does not wrap ErrBadDescription", s, err)
			}
			if d != (Description{}) {
				t.Fatalf("ParseDescription(%q) returned %+v with an error", s, d)
			}
			return
		}
		if d.Type == "" || strings.Contains(d.Type, ";") {
			t.Fatalf("ParseDescription(%q) accepted type %q", s, d.Type)
		}
		if strings.HasSuffix(d.Name, "\x00") {
			// The kernel never puts a NUL in a description; a second
			// trailing NUL would not survive the round trip.
			return
		}
		again, err := ParseDescription(d.String())
		if err != nil || again != d {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, d, d.String(), again, err)
		}
	})
}

// FuzzParseProcStat: the guards read /proc/<pid>/stat, whose second field
// is the process's name, which the process sets itself (prctl(PR_SET_NAME)
// or its executable's name) and may hold spaces and parentheses. Whatever
// the name, state and parent are read right; garbage never panics.
func FuzzParseProcStat(f *testing.F) {
	f.Add("standin", byte('S'), 1234, "")
	f.Add("a) S 1 (b", byte('Z'), 1, "")
	f.Add(")", byte('T'), 0, "")
	f.Add("x y z", byte('R'), 99999, "")
	f.Add("", byte('S'), 1, "1234 (x) S")
	f.Add("", byte('S'), 1, "1234 (x)")
	f.Add("", byte('S'), 1, "(((")
	f.Fuzz(func(t *testing.T, comm string, state byte, ppid int, raw string) {
		if raw != "" {
			_, _ = parseProcStat(1, []byte(raw)) // must not panic
		}
		// The kernel's names: at most 15 bytes, no NUL; states are letters.
		if len(comm) > 15 || strings.ContainsRune(comm, 0) || state < 'A' || state > 'z' || ppid < 0 {
			return
		}
		line := fmt.Sprintf("4321 (%s) %c %d 4321 4321 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0\n", comm, state, ppid)
		st, err := parseProcStat(4321, []byte(line))
		if err != nil {
			t.Fatalf("parseProcStat(%q): %v", line, err)
		}
		if st.Comm != comm || st.State != state || st.PPid != ppid {
			t.Fatalf("parseProcStat(%q) = %+v; want comm %q state %c ppid %d", line, st, comm, state, ppid)
		}
	})
}
