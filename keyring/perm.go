package keyring

import (
	"fmt"
	"strconv"
	"strings"
)

// Perm is a key permission mask as used by KEYCTL_SETPERM: four bytes for
// possessor, user, group and other, from the most significant down.
type Perm uint32

// Permission bits within one byte of a Perm, see keyctl_setperm(3).
const (
	PermView    Perm = 0x01
	PermRead    Perm = 0x02
	PermWrite   Perm = 0x04
	PermSearch  Perm = 0x08
	PermLink    Perm = 0x10
	PermSetattr Perm = 0x20
	PermAll     Perm = 0x3f
)

// Shifts of the four classes within a Perm.
const (
	possessorShift = 24
	userShift      = 16
	groupShift     = 8
	otherShift     = 0
)

// DefaultPerm grants everything to the possessor and lets the owner view the
// keyring, nothing else: no one can find it by name to join it.
const DefaultPerm Perm = PermAll<<possessorShift | PermView<<userShift // 0x3f010000

// Possessor, User, Group and Other return the bits of one class.
func (p Perm) Possessor() Perm { return (p >> possessorShift) & 0xff }
func (p Perm) User() Perm      { return (p >> userShift) & 0xff }
func (p Perm) Group() Perm     { return (p >> groupShift) & 0xff }
func (p Perm) Other() Perm     { return (p >> otherShift) & 0xff }

// NonPossessorSearch reports whether anyone but the possessor may search
// the keyring. keyctl_join_session_keyring(name) finds an existing keyring only
// through that bit, so a keyring that has it can be joined by name.
func (p Perm) NonPossessorSearch() bool {
	return (p.User()|p.Group()|p.Other())&PermSearch != 0
}

func (p Perm) String() string { return fmt.Sprintf("0x%08x", uint32(p)) }

// ParsePerm parses a mask written in hex ("0x3f010000" or "3f010000").
func ParsePerm(s string) (Perm, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("permission mask %q: want a 32-bit hex value such as %s: %w", s, DefaultPerm, err)
	}
	return Perm(v), nil
}

// ValidateSessionPerm refuses masks the hook cannot install safely: one that
// lets a non-possessor search would make the keyring joinable by name, and one
// that takes from the possessor the rights the hook and the container need.
func ValidateSessionPerm(p Perm) error {
	if p.NonPossessorSearch() {
		return fmt.Errorf("permission mask %s grants search to a non-possessor (user %#02x, group %#02x, other %#02x): "+
			"any process of that class could join the keyring by name; clear the 0x08 bits outside the top byte", p, uint32(p.User()), uint32(p.Group()), uint32(p.Other()))
	}
	need := PermView | PermRead | PermWrite | PermSearch | PermLink
	if p.Possessor()&need != need {
		return fmt.Errorf("permission mask %s gives the possessor %#02x: it needs at least view, read, write, search and link (%#02x) to use its session keyring", p, uint32(p.Possessor()), uint32(need))
	}
	return nil
}
