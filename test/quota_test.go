package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// The quota hog: this test binary re-executed with quotaHogEnv set becomes
// a process of the given host uid that fills that uid's key quota with
// user keys in a session keyring of its own, says "ready", and holds them
// until its stdin closes. Its value is "uid:keys" (fill the key count) or
// "uid:bytes:N" (fill the bytes but N).
const quotaHogEnv = "OKH_E2E_QUOTA_HOG"

func init() {
	if v := os.Getenv(quotaHogEnv); v != "" {
		os.Exit(quotaHog(v))
	}
}

func quotaHog(spec string) int {
	runtime.LockOSThread()
	fail := func(format string, args ...any) int {
		fmt.Printf("error: "+format+"\n", args...)
		return 1
	}
	f := strings.Split(spec, ":")
	uid, err := strconv.Atoi(f[0])
	if err != nil || len(f) < 2 {
		return fail("bad %s=%q", quotaHogEnv, spec)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fail("setgroups: %v", err)
	}
	if err := syscall.Setresgid(uid, uid, uid); err != nil {
		return fail("setresgid: %v", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fail("setresuid: %v", err)
	}
	// A new anonymous session keyring, owned by uid, to hold the keys.
	if _, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); e != 0 {
		return fail("keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): %v", e)
	}
	add := func(n int, payload int) error {
		_, err := unix.AddKey("user", fmt.Sprintf("h%d", n), bytes.Repeat([]byte("x"), payload), unix.KEY_SPEC_SESSION_KEYRING)
		return err
	}
	n := 0
	switch f[1] {
	case "keys":
		for ; ; n++ {
			if err := add(n, 1); err == unix.EDQUOT {
				break
			} else if err != nil {
				return fail("add_key %d: %v", n, err)
			}
			if n > 100000 {
				return fail("no EDQUOT after %d keys", n)
			}
		}
	case "bytes":
		room, err := strconv.Atoi(f[2])
		if err != nil {
			return fail("bad room %q", f[2])
		}
		used := func() (int, int) {
			b, _ := os.ReadFile(keyring.KeyUsersPath)
			users, _ := keyring.ParseKeyUsers(bytes.NewReader(b))
			for _, u := range users {
				if u.UID == uint32(uid) {
					return u.QuotaBytes, u.MaxBytes
				}
			}
			return -1, -1
		}
		// A user key costs its description, a NUL, its payload and a few
		// bytes the kernel adds (measured on the first key).
		overhead := 0
		for ; ; n++ {
			q, max := used()
			if q < 0 {
				return fail("no line for uid %d in %s", uid, keyring.KeyUsersPath)
			}
			left := max - q - room
			if left == 0 {
				break
			}
			desc := len(fmt.Sprintf("h%d", n))
			payload := min(left-desc-1-overhead, 16384)
			if n == 0 {
				payload = 1
			}
			if payload < 1 {
				return fail("cannot leave exactly %d bytes (%d to fill)", room, left)
			}
			if err := add(n, payload); err != nil {
				return fail("add_key %d (%d bytes): %v", n, payload, err)
			}
			if n == 0 {
				q2, _ := used()
				overhead = q2 - q - desc - 1 - payload
			}
		}
	default:
		return fail("bad mode %q", f[1])
	}
	fmt.Printf("ready %d\n", n)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startQuotaHog starts the hog and waits until it holds its keys; cleanup
// releases them and waits until the kernel has freed them.
func startQuotaHog(t *testing.T, uid uint32, mode string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%s", quotaHogEnv, uid, mode))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		d := waitKeysFreed(t, uid, 60*time.Second)
		t.Logf("uid %d's keys were freed %v after the hog exited", uid, d)
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("quota hog: %q %v", line, err)
	}
	u, _ := keyUser(t, uid)
	t.Logf("quota hog (uid %d, %s) holds %s keys: %s %+v", uid, mode, strings.TrimSpace(strings.TrimPrefix(line, "ready ")), keyring.KeyUsersPath, u)
}

// setSysctl sets a kernel.keys sysctl for the test and restores it.
func setSysctl(t *testing.T, name string, value int) {
	t.Helper()
	p := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(value)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, old, 0); err != nil {
			t.Errorf("restoring %s to %s: %v", name, bytes.TrimSpace(old), err)
		}
	})
}

func readSysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestQuota: a user-namespaced container whose root maps to a host uid
// whose key quota is used up cannot be given a keyring. runc must refuse
// to start it, with the hook's one line naming the uid, its use from
// /proc/key-users and the sysctls to raise. Under "keys" the uid has no
// key left, so the hook's first call (the anonymous keyring) fails; under
// "bytes" 8 bytes are left: enough for the anonymous keyring "_ses" (5),
// not for the container's named one.
func TestQuota(t *testing.T) {
	runcNoNew.require(t)
	// Bound the hog's work whatever the host's limits are.
	if readSysctl(t, "kernel.keys.maxkeys") > 1000 {
		setSysctl(t, "kernel.keys.maxkeys", 200)
	}
	if readSysctl(t, "kernel.keys.maxbytes") > 100000 {
		setSysctl(t, "kernel.keys.maxbytes", 20000)
	}
	waitKeysFreed(t, quotaHostID, 60*time.Second)
	for _, tc := range []struct {
		mode string
		call string
	}{
		{"keys", "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)"},
		{"bytes:8", `keyctl(KEYCTL_JOIN_SESSION_KEYRING, "`},
	} {
		t.Run(strings.SplitN(tc.mode, ":", 2)[0], func(t *testing.T) {
			startQuotaHog(t, quotaHostID, tc.mode)
			before, _ := keyUser(t, quotaHostID)
			c := newMappedContainer(t, runcNoNew, Config{Args: showArgs(), HookStage: Prestart}, quotaHostID)
			r := c.Run()
			if r.ExitCode == 0 || strings.Contains(r.Stdout, "probe-marker") {
				t.Fatalf("the container started with its owner's key quota exhausted: %s", r)
			}
			var line string
			for _, l := range strings.Split(r.Stderr, "\n") {
				if i := strings.Index(l, "oci-keyring-hook: "); i >= 0 {
					// runc quotes the hook's stderr inside its own msg="...".
					line = strings.ReplaceAll(l[i:], `\"`, `"`)
				}
			}
			t.Logf("hook: %s", line)
			wants := []string{
				tc.call, "disk quota exceeded",
				fmt.Sprintf("the key quota of uid %d", quotaHostID),
				fmt.Sprintf("%s shows %d/%d keys and %d/%d bytes in use", keyring.KeyUsersPath, before.QuotaKeys, before.MaxKeys, before.QuotaBytes, before.MaxBytes),
				"kernel.keys.maxkeys", "kernel.keys.maxbytes",
			}
			if tc.mode != "keys" {
				// The anonymous keyring the hook made first is counted.
				wants[3] = fmt.Sprintf("%s shows %d/%d keys and %d/%d bytes in use", keyring.KeyUsersPath, before.QuotaKeys+1, before.MaxKeys, before.QuotaBytes+5, before.MaxBytes)
				wants[0] += c.ID + `")`
			}
			for _, w := range wants {
				if !strings.Contains(line, w) {
					t.Errorf("runc's error does not contain %q:\n%s", w, r.Stderr)
				}
			}
			// The log says the same.
			logs := c.Bundle.hookLogs(t)
			if len(logs) == 0 || logs[len(logs)-1].Level != "error" || !strings.Contains(logs[len(logs)-1].Raw, fmt.Sprintf("uid %d", quotaHostID)) {
				t.Errorf("hook log: %s", rawLines(logs))
			}
		})
	}
}
