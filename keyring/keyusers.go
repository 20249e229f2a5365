package keyring

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// KeyUser is one line of /proc/key-users: what one owner's keys count
// against its key quota. The kernel writes
//
//	"%5u: %5d %d/%d %d/%d %d/%d"
//	 uid   usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes
//
// with uids as the reader's user namespace sees them.
type KeyUser struct {
	UID          uint32
	Usage        int // references to the owner's quota record
	Keys         int // keys owned
	Instantiated int // of those, instantiated
	QuotaKeys    int // keys counted against the quota
	MaxKeys      int
	QuotaBytes   int // bytes counted against the quota
	MaxBytes     int
}

// ParseKeyUsers parses the text of /proc/key-users.
func ParseKeyUsers(r io.Reader) ([]KeyUser, error) {
	var users []KeyUser
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		u, err := parseKeyUser(line)
		if err != nil {
			return nil, fmt.Errorf("/proc/key-users line %d %q: %w", n, line, err)
		}
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/key-users: %w", err)
	}
	return users, nil
}

func parseKeyUser(line string) (KeyUser, error) {
	uid, rest, ok := strings.Cut(line, ":")
	if !ok {
		return KeyUser{}, fmt.Errorf("no ':' after the uid")
	}
	id, err := strconv.ParseUint(strings.TrimSpace(uid), 10, 32)
	if err != nil {
		return KeyUser{}, fmt.Errorf("uid: %w", err)
	}
	f := strings.Fields(rest)
	if len(f) != 4 {
		return KeyUser{}, fmt.Errorf("want 4 fields after the uid (usage nkeys/nikeys qnkeys/maxkeys qnbytes/maxbytes), got %d", len(f))
	}
	u := KeyUser{UID: uint32(id)}
	if u.Usage, err = strconv.Atoi(f[0]); err != nil {
		return KeyUser{}, fmt.Errorf("usage: %w", err)
	}
	for i, p := range [][2]*int{{&u.Keys, &u.Instantiated}, {&u.QuotaKeys, &u.MaxKeys}, {&u.QuotaBytes, &u.MaxBytes}} {
		a, b, ok := strings.Cut(f[i+1], "/")
		if !ok {
			return KeyUser{}, fmt.Errorf("field %q: want a/b", f[i+1])
		}
		if *p[0], err = strconv.Atoi(a); err != nil {
			return KeyUser{}, fmt.Errorf("field %q: %w", f[i+1], err)
		}
		if *p[1], err = strconv.Atoi(b); err != nil {
			return KeyUser{}, fmt.Errorf("field %q: %w", f[i+1], err)
		}
	}
	return u, nil
}

// Room is how many more keys and bytes the owner's quota allows.
func (u KeyUser) Room() (keys, bytes int) {
	return u.MaxKeys - u.QuotaKeys, u.MaxBytes - u.QuotaBytes
}

// Fill is the larger of the used fractions of the key and byte quotas.
func (u KeyUser) Fill() float64 {
	frac := func(used, limit int) float64 {
		if limit <= 0 {
			return 1
		}
		return float64(used) / float64(limit)
	}
	return max(frac(u.QuotaKeys, u.MaxKeys), frac(u.QuotaBytes, u.MaxBytes))
}

// KeyringCost is what a keyring named name costs its owner's quota: one
// key, and the name with its NUL (a keyring has no payload of its own).
func KeyringCost(name string) (keys, bytes int) { return 1, len(name) + 1 }
