package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// keyLimits are the kernel.keys quota sysctls. Global root (uid 0) gets
// the root_* limits; every other owner, including the host uid that a
// user-namespaced container's root maps to, gets maxkeys and maxbytes.
type keyLimits struct {
	MaxKeys, MaxBytes, RootMaxKeys, RootMaxBytes int
}

func readKeyLimits(dir string) (keyLimits, error) {
	var l keyLimits
	for _, f := range []struct {
		name string
		v    *int
	}{{"maxkeys", &l.MaxKeys}, {"maxbytes", &l.MaxBytes}, {"root_maxkeys", &l.RootMaxKeys}, {"root_maxbytes", &l.RootMaxBytes}} {
		p := filepath.Join(dir, f.name)
		b, err := os.ReadFile(p)
		if err != nil {
			return l, err
		}
		if *f.v, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return l, fmt.Errorf("%s: %w", p, err)
		}
	}
	return l, nil
}

// What one container costs its keyring's owner at most: the hook joins an
// anonymous keyring ("_ses") first, released right after, then one named
// by the container id. Headroom is judged against the longest name the
// hook accepts; the counts shown assume the usual 64-hex-character id.
var (
	anonKeys, anonBytes   = keyring.KeyringCost(keyring.AnonymousName)
	worstKeys, worstBytes = keyring.KeyringCost(strings.Repeat("x", keyring.MaxNameLen))
	needKeys, needBytes   = anonKeys + worstKeys, anonBytes + worstBytes
	idKeys, idBytes       = keyring.KeyringCost(strings.Repeat("0", 64))
)

// nearFull is the fill of a quota at which an owner is reported.
const nearFull = 0.9

// checkQuotas reads /proc/key-users and the kernel.keys sysctls under proc.
func checkQuotas(proc string) []checkResult {
	fail := func(err error) []checkResult {
		return []checkResult{{Check: "key-quota", Status: statusFail, Detail: err.Error(), Fix: fixNoKeys}}
	}
	lim, err := readKeyLimits(filepath.Join(proc, "sys/kernel/keys"))
	if err != nil {
		return fail(err)
	}
	b, err := os.ReadFile(filepath.Join(proc, "key-users"))
	if err != nil {
		return fail(err)
	}
	users, err := keyring.ParseKeyUsers(bytes.NewReader(b))
	if err != nil {
		return []checkResult{{Check: "key-quota", Status: statusWarn, Detail: err.Error()}}
	}
	return quotaResults(users, lim)
}

// containersFit is how many more containers with 64-character ids fit.
func containersFit(keysLeft, bytesLeft int) int {
	return max(0, min(keysLeft/idKeys, bytesLeft/idBytes))
}

func quotaResults(users []keyring.KeyUser, lim keyLimits) []checkResult {
	root := keyring.KeyUser{UID: 0, MaxKeys: lim.RootMaxKeys, MaxBytes: lim.RootMaxBytes}
	var full []string
	for _, u := range users {
		if u.UID == 0 {
			root = u
		} else if u.Fill() >= nearFull {
			full = append(full, fmt.Sprintf("uid %d: %d/%d keys, %d/%d bytes", u.UID, u.QuotaKeys, u.MaxKeys, u.QuotaBytes, u.MaxBytes))
		}
	}

	keysLeft, bytesLeft := root.Room()
	r := checkResult{
		Check:  "key-quota-root",
		Detail: fmt.Sprintf("root: %d/%d keys, %d/%d bytes used: room for %d more containers", root.QuotaKeys, root.MaxKeys, root.QuotaBytes, root.MaxBytes, containersFit(keysLeft, bytesLeft)),
		Values: map[string]any{"keys": root.QuotaKeys, "maxkeys": root.MaxKeys, "bytes": root.QuotaBytes, "maxbytes": root.MaxBytes},
	}
	switch {
	case keysLeft < needKeys || bytesLeft < needBytes:
		r.Status = statusFail
		r.Detail = fmt.Sprintf("root's key quota is exhausted: %d/%d keys, %d/%d bytes used; a container needs up to %d keys and %d bytes", root.QuotaKeys, root.MaxKeys, root.QuotaBytes, root.MaxBytes, needKeys, needBytes)
		r.Fix = "raise kernel.keys.root_maxkeys and kernel.keys.root_maxbytes (sysctl), or find what holds root's keys in /proc/keys"
	case root.Fill() >= nearFull:
		r.Status, r.Fix = statusWarn, "raise kernel.keys.root_maxkeys and kernel.keys.root_maxbytes (sysctl) before the quota runs out"
	default:
		r.Status = statusOK
	}
	results := []checkResult{r}

	r = checkResult{
		Check:  "key-quota-userns",
		Detail: fmt.Sprintf("non-root owners (a user-namespaced container's root): kernel.keys.maxkeys %d, maxbytes %d: %d containers each", lim.MaxKeys, lim.MaxBytes, containersFit(lim.MaxKeys, lim.MaxBytes)),
		Values: map[string]any{"maxkeys": lim.MaxKeys, "maxbytes": lim.MaxBytes},
		Status: statusOK,
	}
	if lim.MaxKeys < needKeys || lim.MaxBytes < needBytes {
		r.Status, r.Fix = statusWarn, "containers in user namespaces will fail with EDQUOT: raise kernel.keys.maxkeys and kernel.keys.maxbytes (sysctl)"
	}
	results = append(results, r)

	r = checkResult{Check: "key-quota-full", Status: statusOK, Detail: fmt.Sprintf("no non-root owner at %.0f%% of its key quota or more", nearFull*100)}
	if len(full) > 0 {
		r.Status = statusWarn
		r.Detail = fmt.Sprintf("at %.0f%% of the key quota or more: %s", nearFull*100, strings.Join(full, "; "))
		r.Fix = "containers whose root maps to these uids fail with EDQUOT: raise kernel.keys.maxkeys and kernel.keys.maxbytes (sysctl)"
	}
	return append(results, r)
}
