package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// Checks of the kernel and of this process. Each takes the files it reads
// as arguments, so tests point them at sample text.

// hostChecks runs the kernel and privilege checks against the proc
// filesystem mounted at proc.
func hostChecks(proc string) []checkResult {
	results := []checkResult{
		checkKeyrings(proc),
		checkKeyringNames(keyring.Capabilities),
		checkYAMA(filepath.Join(proc, "sys/kernel/yama/ptrace_scope")),
		checkCapSysPtrace(filepath.Join(proc, "self/status")),
	}
	return append(results, checkQuotas(proc)...)
}

const fixNoKeys = "use a kernel built with key management (CONFIG_KEYS=y)"

func checkKeyrings(proc string) checkResult {
	r := checkResult{Check: "keyrings"}
	var missing []string
	for _, name := range []string{"keys", "key-users"} {
		p := filepath.Join(proc, name)
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", p, err))
		}
	}
	if len(missing) > 0 {
		r.Status, r.Detail, r.Fix = statusFail, "kernel keyrings missing: "+strings.Join(missing, "; "), fixNoKeys
		return r
	}
	r.Status, r.Detail = statusOK, fmt.Sprintf("%s and %s present", filepath.Join(proc, "keys"), filepath.Join(proc, "key-users"))
	return r
}

// checkKeyringNames asks the kernel, through probe, whether keyring names
// are per user namespace. Without that the hook still works; names are
// just global, so a name is findable (never joinable) across namespaces.
func checkKeyringNames(probe func() (keyring.Caps, error)) checkResult {
	r := checkResult{Check: "keyring-names"}
	caps, err := probe()
	switch {
	case errors.Is(err, unix.ENOSYS):
		r.Status, r.Detail, r.Fix = statusFail, fmt.Sprintf("no keyctl(2): %v", err), fixNoKeys
		return r
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		r.Status, r.Detail = statusWarn, fmt.Sprintf("kernel older than 5.3 (%v): keyring names are global, not per user namespace", err)
		r.Fix = "Linux 5.3 or later keeps keyring names per user namespace; the hook works either way"
		return r
	case err != nil:
		r.Status, r.Detail, r.Fix = statusWarn, fmt.Sprintf("cannot ask the kernel: %v", err), "run the check where keyctl(2) is not filtered (as on the host)"
		return r
	}
	r.Values = map[string]any{"capabilities": fmt.Sprintf("%x", []byte(caps))}
	if !caps.NamespacedNames() {
		r.Status, r.Detail = statusWarn, fmt.Sprintf("KEYCTL_CAPABILITIES %x lacks KEYCTL_CAPS1_NS_KEYRING_NAME: keyring names are global, not per user namespace", []byte(caps))
		r.Fix = "a kernel with per-user-namespace keyring names (5.3 or later) keeps containers in user namespaces from seeing each other's names; the hook works either way"
		return r
	}
	r.Status, r.Detail = statusOK, fmt.Sprintf("per user namespace (KEYCTL_CAPABILITIES %x has KEYCTL_CAPS1_NS_KEYRING_NAME)", []byte(caps))
	return r
}

// checkYAMA reads YAMA's ptrace_scope. Scopes 1 and 2 still let a process
// with CAP_SYS_PTRACE attach; 3 forbids attaching until the next boot.
func checkYAMA(path string) checkResult {
	r := checkResult{Check: "ptrace-scope"}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		r.Status, r.Detail = statusOK, fmt.Sprintf("no YAMA (%s absent): ptrace needs only the usual permissions", path)
		return r
	}
	if err != nil {
		r.Status, r.Detail, r.Fix = statusWarn, fmt.Sprintf("cannot read %s: %v", path, err), "run the check as root"
		return r
	}
	v := strings.TrimSpace(string(b))
	scope, err := strconv.Atoi(v)
	if err != nil {
		r.Status, r.Detail = statusWarn, fmt.Sprintf("%s: unexpected value %q", path, v)
		return r
	}
	r.Values = map[string]any{"ptrace_scope": scope}
	switch scope {
	case 0:
		r.Status, r.Detail = statusOK, "YAMA ptrace_scope 0 (classic)"
	case 1:
		r.Status, r.Detail = statusOK, "YAMA ptrace_scope 1 (restricted): CAP_SYS_PTRACE still attaches"
	case 2:
		r.Status, r.Detail = statusOK, "YAMA ptrace_scope 2 (admin only): needs CAP_SYS_PTRACE, which root has"
	case 3:
		r.Status, r.Detail = statusFail, "YAMA ptrace_scope 3: no process may attach with ptrace, so the hook cannot enter containers"
		r.Fix = "boot with kernel.yama.ptrace_scope at 2 or lower (sysctl.d); once 3 it cannot be lowered without a reboot"
	default:
		r.Status, r.Detail = statusWarn, fmt.Sprintf("YAMA ptrace_scope %d: unknown value", scope)
	}
	return r
}

// checkCapSysPtrace reads the effective capabilities from a
// /proc/<pid>/status file. runc init is not dumpable, so attaching to it
// needs CAP_SYS_PTRACE whatever the uids.
func checkCapSysPtrace(statusPath string) checkResult {
	r := checkResult{Check: "cap-sys-ptrace"}
	b, err := os.ReadFile(statusPath)
	if err != nil {
		r.Status, r.Detail = statusFail, fmt.Sprintf("cannot read %s: %v", statusPath, err)
		r.Fix = "mount /proc"
		return r
	}
	v, ok := keyring.StatusField(b, "CapEff")
	capEff, err := strconv.ParseUint(v, 16, 64)
	if !ok || err != nil {
		r.Status, r.Detail = statusFail, fmt.Sprintf("%s: no readable CapEff line (%q)", statusPath, v)
		return r
	}
	r.Values = map[string]any{"cap_eff": fmt.Sprintf("%016x", capEff)}
	if capEff&(1<<unix.CAP_SYS_PTRACE) == 0 {
		r.Status, r.Detail = statusFail, fmt.Sprintf("CAP_SYS_PTRACE is not in the effective set (CapEff %016x, uid %d)", capEff, os.Geteuid())
		r.Fix = "run the hook, and this check, as root: runc init is not dumpable, so entering it needs CAP_SYS_PTRACE"
		return r
	}
	r.Status, r.Detail = statusOK, fmt.Sprintf("CAP_SYS_PTRACE in the effective set (CapEff %016x)", capEff)
	return r
}
