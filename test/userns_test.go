package test

import (
	"strings"
	"testing"
)

const (
	// runc 1.1.5's _ses.<id> with a user namespace (measured).
	permRuncUserNS = "0x3f130008"
	// What an unmapped uid shows as inside a user namespace.
	overflowUID = 65534
)

// TestUserNamespace runs user-namespaced containers (container 0 = host
// 100000) under runc and crun, without and with the hook.
func TestUserNamespace(t *testing.T) {
	for _, rt := range []Runtime{runcDefault, runcNoNew, crunDefault, crunNoNew} {
		t.Run("baseline/"+rt.String(), func(t *testing.T) {
			rt.require(t)
			h := host(t)
			c := newContainer(t, rt, Config{Args: showArgs(), UserNS: true})
			rep := checkProbeRan(t, c.Run())
			t.Logf("host @s: %s; container @s: %s; container @u: %s", h.Session, rep.Session, rep.User)
			if rt.NoNewKeyring {
				// Even a user namespace does not stop --no-new-keyring from
				// handing over the host's keyring, as a possessor: the
				// container reads its keys. (Its owner, uid 0, is unmapped
				// in the container: it shows as the overflow uid 65534.)
				if strings.HasPrefix(h.Session.Name, "_uid_ses.") {
					// The suite has no session keyring of its own (TestMain
					// could not make one): the kernel falls back to the
					// user-session keyring of the caller's uid, which differs
					// between the host and the container's root.
					t.Logf("the suite runs in the fallback %s: not comparing", h.Session)
					return
				}
				if rep.Session.Serial != h.Session.Serial {
					t.Errorf("container @s = %s, want the host's %s", rep.Session, h.Session)
				}
				if rep.Session.UID != overflowUID {
					t.Errorf("container @s uid = %d, want the overflow uid %d", rep.Session.UID, overflowUID)
				}
				checkHostSecret(t, rep, true)
				return
			}
			switch rt.Name {
			case "runc":
				// runc's own keyring under a user namespace: owner
				// view/read/link plus *other* search (0x3f130008), not the
				// 0x3f1b0000 it uses without one. It is created by the
				// container's root (shown as 0 inside).
				checkKeyring(t, "container @s", rep.Session, "_ses."+c.ID, permRuncUserNS)
				if rep.Session.UID != 0 {
					t.Errorf("container @s uid = %d, want 0", rep.Session.UID)
				}
			case "crun":
				// crun creates <id> in its parent, before the clone: it is
				// the host root's keyring (unmapped: the overflow uid).
				checkKeyring(t, "container @s", rep.Session, c.ID, permCrunDefault)
				if rep.Session.UID != overflowUID {
					t.Errorf("container @s uid = %d, want the overflow uid %d", rep.Session.UID, overflowUID)
				}
			}
			checkHostSecret(t, rep, false)
			if rep.User == nil || rep.User.Serial == h.User.Serial {
				t.Errorf("container @u = %s, want one other than the host's %s", rep.User, h.User)
			}
		})
		for _, stage := range []string{Prestart, CreateRuntime} {
			t.Run("hook/"+rt.String()+"/"+stage, func(t *testing.T) {
				rt.require(t)
				h := host(t)
				c := newContainer(t, rt, Config{Args: showArgs(), UserNS: true, HookStage: stage})
				rep := checkProbeRan(t, c.Run())
				checkHookKeyring(t, c, rep, c.ID, stage, "named")
				checkHostSecret(t, rep, false)
				// The keyring belongs to the container's root (host uid
				// 100000), which the probe sees through the mapping as 0.
				if rep.Session.UID != 0 {
					t.Errorf("container @s uid as seen inside = %d, want 0", rep.Session.UID)
				}
				// A user namespace gives the container its own @u.
				if rep.User == nil || rep.User.Serial == h.User.Serial {
					t.Errorf("container @u = %s, want one other than the host's %s", rep.User, h.User)
				}
			})
		}
	}
}
