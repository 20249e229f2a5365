package test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// Host uids of the user-namespace mappings these tests use, 65536 ids
// each, apart from every other test's (usernsHostID, 100000): their key
// quota records in /proc/key-users are theirs alone.
const (
	quotaHostID = 300000 // TestQuota
	loadHostID  = 400000 // TestLoad
	otherHostID = 500000 // TestIsolationUserNS, the "different mapping"
)

// newMappedContainer is newContainer with a user namespace mapping the
// container's root to hostID.
func newMappedContainer(t *testing.T, rt Runtime, cfg Config, hostID uint32) *Container {
	t.Helper()
	cfg.UserNS = true
	c := newContainer(t, rt, cfg)
	c.editSpec(t, func(s *specs.Spec) {
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: usernsSize}}
		s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
	})
	return c
}

// editSpec changes the container's config.json before it runs.
func (c *Container) editSpec(t *testing.T, edit func(*specs.Spec)) {
	t.Helper()
	edit(c.Bundle.Spec)
	data, err := json.MarshalIndent(c.Bundle.Spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Bundle.Dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// keyUser returns uid's line of /proc/key-users; ok is false when the uid
// owns nothing (the kernel drops the line).
func keyUser(t *testing.T, uid uint32) (u keyring.KeyUser, ok bool) {
	t.Helper()
	b, err := os.ReadFile(keyring.KeyUsersPath)
	if err != nil {
		t.Fatal(err)
	}
	users, err := keyring.ParseKeyUsers(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.UID == uid {
			return u, true
		}
	}
	return keyring.KeyUser{}, false
}

// waitKeysFreed waits until uid owns no keys counted against its quota.
// The kernel uncharges a key as soon as its last reference goes, and its
// garbage collector drops the key and then the line shortly after.
func waitKeysFreed(t *testing.T, uid uint32, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		u, ok := keyUser(t, uid)
		if !ok || (u.QuotaKeys == 0 && u.Keys == 0) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("uid %d still owns keys after %v: %+v", uid, timeout, u)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
