package test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// What a process started with `<runtime> exec` gets as its session keyring.
type execGets int

const (
	execGetsHost  execGets = iota // the keyring of whoever ran exec: the host's
	execGetsInit                  // the same keyring as the container's init
	execGetsFresh                 // a new keyring named _ses.<id>, each exec its own
)

func (e execGets) String() string {
	return [...]string{"the host's keyring", "the init's keyring", "a fresh _ses.<id>"}[e]
}

const (
	initSecretDesc = "okh-e2e-init-secret"
	initSecret     = "the container init's secret"
)

// TestExec shows what an exec'd process gets (design.md §4). A hook runs once
// per container, at its creation, and cannot reach exec'd processes:
//   - runc default: runc exec joins _ses.<id> by name. Without the hook that
//     is the init's (searchable) keyring; with it, the init no longer holds
//     _ses.<id>, so exec gets a fresh keyring of that name. runc exec does
//     not set its permissions (0x3f130000, no search), so the next exec
//     cannot join it either: every exec'd process gets its own (measured).
//     runc's own _ses.<id> outlives the init's execve by some milliseconds
//     (held by the exiting runc init threads): an exec in that window joins
//     it (0x3f1b0000, searchable) instead, so the test waits for it to go.
//   - runc --no-new-keyring: exec keeps the host's keyring, hook or not.
//   - crun 1.8.1 (measured): crun exec never touches keyrings, so even in
//     crun's default mode an exec'd process gets the host's keyring.
func TestExec(t *testing.T) {
	cases := []struct {
		rt    Runtime
		stage string // "" = no hook
		want  execGets
	}{
		{runcDefault, "", execGetsInit},
		{runcNoNew, "", execGetsHost},
		{crunDefault, "", execGetsHost},
		{crunNoNew, "", execGetsHost},
		{runcDefault, Prestart, execGetsFresh},
		{runcDefault, CreateRuntime, execGetsFresh},
		{runcNoNew, Prestart, execGetsHost},
		{crunDefault, Prestart, execGetsHost},
		{crunNoNew, Prestart, execGetsHost},
	}
	for _, tc := range cases {
		name := "baseline/" + tc.rt.String()
		if tc.stage != "" {
			name = "hook/" + tc.rt.String() + "/" + tc.stage
		}
		t.Run(name, func(t *testing.T) {
			tc.rt.require(t)
			h := host(t)

			// A long-lived init holding a secret in its @s, unless that @s
			// is the host's own keyring (no hook, --no-new-keyring).
			args := []string{"/probe", "victim", "-desc", initSecretDesc, "-payload", initSecret}
			initShared := tc.stage == "" && tc.rt.NoNewKeyring
			if initShared {
				args = []string{"/probe", "wait"}
			}
			c, init := startContainer(t, tc.rt, Config{Args: args, HookStage: tc.stage})
			if !initShared && (init.Key == nil || !init.Key.Found) {
				t.Fatalf("the init could not add its key: %+v", init.Key)
			}
			if tc.stage != "" {
				checkHookKeyring(t, c, init, c.ID, tc.stage, "named")
			}

			if tc.want == execGetsFresh {
				waitKeyringGone(t, "_ses."+c.ID)
			}
			e := mustReport(t, c.Exec("/probe", "show", "-find", hostSecretDesc))
			t.Logf("want: %s\nhost @s: %s\ninit @s: %s\nexec @s: %s", tc.want, h.Session, init.Session, e.Session)
			switch tc.want {
			case execGetsHost:
				if e.Session.Serial != h.Session.Serial {
					t.Errorf("exec'd process @s = %s, want the host's %s", e.Session, h.Session)
				}
			case execGetsInit:
				if e.Session.Serial != init.Session.Serial {
					t.Errorf("exec'd process @s = %s, want the init's %s", e.Session, init.Session)
				}
			case execGetsFresh:
				if e.Session.Serial == h.Session.Serial || e.Session.Serial == init.Session.Serial {
					t.Errorf("exec'd process @s = %s, want neither the host's %s nor the init's %s", e.Session, h.Session, init.Session)
				}
				checkKeyring(t, "exec'd process @s", e.Session, "_ses."+c.ID, permJoined)
			}
			checkHostSecret(t, e, tc.want == execGetsHost)

			if !initShared {
				// A second exec: does it find the init's secret, and does it
				// get the same keyring as the first exec?
				e2 := mustReport(t, c.Exec("/probe", "show", "-find", initSecretDesc))
				found := e2.Key != nil && e2.Key.Found
				if want := tc.want == execGetsInit; found != want {
					t.Errorf("exec'd process finds the init's secret: %v, want %v (%+v)", found, want, e2.Key)
				}
				same := e2.Session.Serial == e.Session.Serial
				if want := tc.want != execGetsFresh; same != want {
					t.Errorf("second exec @s = %s, first exec @s = %s: same = %v, want %v", e2.Session, e.Session, same, want)
				}
			}
		})
	}
}

// waitKeyringGone waits until no keyring called name is listed in the host's
// /proc/keys (which lists the keys the caller, root, may view: runc's
// _ses.<id> is owner-viewable), and logs how long that took.
func waitKeyringGone(t *testing.T, name string) {
	t.Helper()
	start := time.Now()
	for {
		b, err := os.ReadFile("/proc/keys")
		if err != nil {
			t.Logf("cannot watch %s (%v): waiting 1s instead", name, err)
			time.Sleep(time.Second)
			return
		}
		var line string
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 9 && f[7] == "keyring" && strings.TrimSuffix(f[8], ":") == name {
				line = l
			}
		}
		if line == "" {
			t.Logf("keyring %q gone from /proc/keys after %v", name, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > readyTimeout {
			t.Fatalf("keyring %q is still alive after %v: %s", name, readyTimeout, line)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
