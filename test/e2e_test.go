package test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Permission masks seen in the tests (KEYCTL_DESCRIBE, as the probe prints).
const (
	permHook        = "0x3f010000" // the hook's default: possessor all, owner view
	permRuncDefault = "0x3f1b0000" // runc's _ses.<id>: owner view/read/search/link
	permCrunDefault = permJoined   // crun's <id> is a plain join
	// What KEYCTL_JOIN_SESSION_KEYRING gives a keyring it creates: possessor
	// all, owner view/read/link, no search (nobody else can join it).
	permJoined = "0x3f130000"
)

// The probe's output must come through a container unchanged.
const (
	probeMarker = "okh-marker-42"
	probeExit   = 7
)

// showArgs makes the probe describe its keyrings, look for the host's
// secret in @s, print the marker and exit with probeExit.
func showArgs() []string {
	return []string{"/probe", "show", "-find", hostSecretDesc, "-marker", probeMarker, "-exit", fmt.Sprint(probeExit)}
}

// checkHostSecret checks whether the process could find and read the key
// TestMain put into the suite's own session keyring.
func checkHostSecret(t *testing.T, rep *Report, wantVisible bool) {
	t.Helper()
	h := host(t)
	if h.Key == nil || !h.Key.Found {
		if testutil.InCI() {
			t.Fatalf("the suite's session keyring holds no secret (%v): TestMain could not set it up", h.Key)
		}
		t.Logf("the suite's session keyring holds no secret (%v): not checking its visibility", h.Key)
		return
	}
	k := rep.Key
	if k == nil {
		t.Fatalf("the probe did not search for the host secret")
	}
	visible := k.Found && k.Readable && k.Payload == hostSecret
	switch {
	case wantVisible && !visible:
		t.Errorf("the host secret %q is not readable in the container (%+v), want it readable", hostSecretDesc, *k)
	case !wantVisible && k.Found:
		t.Errorf("the container found the host secret %q: %+v", hostSecretDesc, *k)
	}
}

// checkProbeRan checks that the container ran the probe to its end: exit
// status and marker unchanged by the runtime and the hook.
func checkProbeRan(t *testing.T, r *Result) *Report {
	t.Helper()
	if r.ExitCode != probeExit {
		t.Errorf("exit status = %d, want the probe's %d", r.ExitCode, probeExit)
	}
	if !strings.Contains(r.Stdout, "probe-marker: "+probeMarker+"\n") {
		t.Errorf("stdout lacks the probe's marker line:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "probe-marker: "+probeMarker+"\n") {
		t.Errorf("stderr lacks the probe's marker line:\n%s", r.Stderr)
	}
	rep := mustReport(t, r)
	if rep.Marker != probeMarker {
		t.Errorf("report marker = %q, want %q", rep.Marker, probeMarker)
	}
	if rep.PID != 1 {
		t.Errorf("probe pid = %d, want 1 (the container's init)", rep.PID)
	}
	return rep
}

// checkKeyring checks a keyring seen from inside a container.
func checkKeyring(t *testing.T, what string, k *Keyring, name, perm string) {
	t.Helper()
	if k == nil {
		t.Fatalf("%s: no keyring reported", what)
	}
	if k.Error != "" {
		t.Fatalf("%s: %s", what, k.Error)
	}
	if k.Type != "keyring" {
		t.Errorf("%s: type = %q, want keyring (%s)", what, k.Type, k)
	}
	if k.Name != name {
		t.Errorf("%s: name = %q, want %q (%s)", what, k.Name, name, k)
	}
	if k.Perm != perm {
		t.Errorf("%s: perm = %s, want %s (%s)", what, k.Perm, perm, k)
	}
}

// checkHookKeyring checks that the container's session keyring is a fresh,
// private one installed by the hook, and that the hook logged that serial.
func checkHookKeyring(t *testing.T, c *Container, rep *Report, name, stage, mode string) {
	t.Helper()
	h := host(t)
	t.Logf("host @s: %s; container @s: %s; container @u: %s", h.Session, rep.Session, rep.User)
	if rep.Session.Serial == h.Session.Serial {
		t.Errorf("the container has the host's session keyring %s", h.Session)
	}
	checkKeyring(t, "container @s", rep.Session, name, permHook)
	log := c.Bundle.hookSuccess(t, c.ID)
	t.Logf("hook log: %s", log.Raw)
	if log.Serial != rep.Session.Serial {
		t.Errorf("hook logged serial %d, the container has %d", log.Serial, rep.Session.Serial)
	}
	if log.Name != name {
		t.Errorf("hook logged name %q, want %q", log.Name, name)
	}
	if log.Perm != permHook {
		t.Errorf("hook logged perm %q, want %q", log.Perm, permHook)
	}
	if log.Stage != stage {
		t.Errorf("hook logged stage %q, want %q", log.Stage, stage)
	}
	if log.Mode != mode {
		t.Errorf("hook logged mode %q, want %q", log.Mode, mode)
	}
	if log.PID <= 1 {
		t.Errorf("hook logged pid %d, want the container's host pid", log.PID)
	}
}

// TestBaseline documents, without the hook, what each runtime gives a
// container as its session keyring (design.md §1).
func TestBaseline(t *testing.T) {
	for _, rt := range allRuntimes {
		t.Run(rt.String(), func(t *testing.T) {
			rt.require(t)
			h := host(t)
			c := newContainer(t, rt, Config{Args: showArgs()})
			rep := checkProbeRan(t, c.Run())
			t.Logf("host @s: %s; container @s: %s", h.Session, rep.Session)
			switch {
			case rt.NoNewKeyring:
				// runc and crun --no-new-keyring: the host's keyring itself.
				if rep.Session.Serial != h.Session.Serial {
					t.Errorf("container @s = %s, want the host's %s", rep.Session, h.Session)
				}
				checkKeyring(t, "container @s", rep.Session, h.Session.Name, h.Session.Perm)
			case rt.Name == "runc":
				checkKeyring(t, "container @s", rep.Session, "_ses."+c.ID, permRuncDefault)
			case rt.Name == "crun":
				checkKeyring(t, "container @s", rep.Session, c.ID, permCrunDefault)
			}
			if !rt.NoNewKeyring && rep.Session.Serial == h.Session.Serial {
				t.Errorf("container has the host's session keyring %s", h.Session)
			}
			// --no-new-keyring hands the host's keys to the container.
			checkHostSecret(t, rep, rt.NoNewKeyring)
			// Without a user namespace @u is the host's, whatever @s is.
			if rep.User == nil || rep.User.Serial != h.User.Serial {
				t.Errorf("container @u = %s, want the host's %s", rep.User, h.User)
			}
		})
	}
}

// TestHook runs the probe under every runtime and keyring mode, with the hook
// at prestart and at createRuntime: the container's session keyring is a
// fresh one named after the container, that nobody can join by name, and
// the container's output and exit status are untouched.
func TestHook(t *testing.T) {
	for _, rt := range allRuntimes {
		for _, stage := range []string{Prestart, CreateRuntime} {
			t.Run(rt.String()+"/"+stage, func(t *testing.T) {
				rt.require(t)
				h := host(t)
				c := newContainer(t, rt, Config{Args: showArgs(), HookStage: stage})
				rep := checkProbeRan(t, c.Run())
				checkHookKeyring(t, c, rep, c.ID, stage, "named")
				checkHostSecret(t, rep, false)
				if rep.Session.UID != 0 {
					t.Errorf("container @s uid = %d, want 0", rep.Session.UID)
				}
				// The hook changes @s only: without a user namespace @u is
				// still the host's (design.md §1).
				if rep.User == nil || rep.User.Serial != h.User.Serial {
					t.Errorf("container @u = %s, want the host's %s", rep.User, h.User)
				}
			})
		}
	}
}

// TestHookLog checks the hook's JSON log line against what the runtime and
// the probe report for a running container.
func TestHookLog(t *testing.T) {
	for _, rt := range []Runtime{runcDefault, crunDefault} {
		t.Run(rt.String(), func(t *testing.T) {
			rt.require(t)
			c, rep := startContainer(t, rt, Config{Args: []string{"/probe", "wait"}, HookStage: CreateRuntime})
			checkHookKeyring(t, c, rep, c.ID, CreateRuntime, "named")

			var lines int
			for _, l := range c.Bundle.hookLogs(t) {
				if l.ID == c.ID && l.Serial != 0 {
					lines++
				}
			}
			if lines != 1 {
				t.Errorf("%d log lines with a serial for %s, want 1", lines, c.ID)
			}
			log := c.Bundle.hookSuccess(t, c.ID)
			if log.Msg == "" {
				t.Errorf("hook log line without msg: %s", log.Raw)
			}
			// The pid the hook entered is the container's init as the
			// runtime knows it.
			st := c.State(t)
			if log.PID != st.Pid {
				t.Errorf("hook logged pid %d, the runtime says the init is %d", log.PID, st.Pid)
			}
		})
	}
}
