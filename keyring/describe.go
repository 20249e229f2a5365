package keyring

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Description is what KEYCTL_DESCRIBE reports of a key:
// "type;uid;gid;perm;description".
type Description struct {
	Type string
	UID  uint32
	GID  uint32
	Perm Perm
	Name string
}

// ErrBadDescription is returned for text that is not a KEYCTL_DESCRIBE result.
var ErrBadDescription = errors.New("malformed key description")

// ParseDescription parses the text KEYCTL_DESCRIBE writes, with or without
// its trailing NUL. The description itself may contain ';'.
func ParseDescription(s string) (Description, error) {
	s = strings.TrimSuffix(s, "\x00")
	f := strings.SplitN(s, ";", 5)
	if len(f) != 5 {
		return Description{}, fmt.Errorf("%w: %q: want type;uid;gid;perm;description", ErrBadDescription, s)
	}
	if f[0] == "" {
		return Description{}, fmt.Errorf("%w: %q: empty type", ErrBadDescription, s)
	}
	uid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return Description{}, fmt.Errorf("%w: %q: uid: %w", ErrBadDescription, s, err)
	}
	gid, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return Description{}, fmt.Errorf("%w: %q: gid: %w", ErrBadDescription, s, err)
	}
	perm, err := strconv.ParseUint(f[3], 16, 32)
	if err != nil {
		return Description{}, fmt.Errorf("%w: %q: perm: %w", ErrBadDescription, s, err)
	}
	return Description{Type: f[0], UID: uint32(uid), GID: uint32(gid), Perm: Perm(perm), Name: f[4]}, nil
}

func (d Description) String() string {
	return fmt.Sprintf("%s;%d;%d;%08x;%s", d.Type, d.UID, d.GID, uint32(d.Perm), d.Name)
}
