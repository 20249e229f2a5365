package test

import (
	"fmt"
	"testing"
)

const (
	victimSecretDesc = "okh-e2e-victim-secret"
	victimSecret     = "the victim's secret"
)

func victimArgs() []string {
	return []string{"/probe", "victim", "-desc", victimSecretDesc, "-payload", victimSecret}
}

// startVictim starts a long-lived container whose init added victimSecret
// to its session keyring.
func startVictim(t *testing.T, rt Runtime, stage string) (*Container, *Report) {
	t.Helper()
	c, rep := startContainer(t, rt, Config{Args: victimArgs(), HookStage: stage})
	if rep.Key == nil || !rep.Key.Found {
		t.Fatalf("the victim could not add its key: %+v (error %q)", rep.Key, rep.Error)
	}
	t.Logf("victim %s (%s, hook %q): @s %s, key %d", c.ID, rt, stage, rep.Session, rep.Key.Serial)
	return c, rep
}

// attack runs an attacker container that joins the session keyring called
// name and searches it for the victim's key. The attacker has no user
// namespace and keyctl is allowed: the setting design.md §1 measured.
func attack(t *testing.T, rt Runtime, stage, name string) *Report {
	t.Helper()
	c := newContainer(t, rt, Config{
		Args:      []string{"/probe", "join", "-name", name, "-find", victimSecretDesc},
		HookStage: stage,
	})
	r := c.Run()
	if r.ExitCode != 0 {
		t.Fatalf("the attacker failed: %s", r)
	}
	rep := mustReport(t, r)
	if rep.Joined == nil {
		t.Fatalf("the attacker could not join %q: %s", name, rep.Error)
	}
	t.Logf("attacker (%s, hook %q) joined %q: %s; victim key: %+v", rt, stage, name, rep.Joined, rep.Key)
	return rep
}

// TestIsolationBaseline reproduces the vulnerability the hook fixes: under
// runc's default, another container joins the victim's _ses.<id> by name and
// reads the victim's key.
func TestIsolationBaseline(t *testing.T) {
	runcDefault.require(t)
	_, victim := startVictim(t, runcDefault, "")
	checkKeyring(t, "victim @s", victim.Session, victim.Session.Name, permRuncDefault)
	rep := attack(t, runcDefault, "", victim.Session.Name)
	if rep.Joined.Serial != victim.Session.Serial {
		t.Errorf("the attacker joined %s, not the victim's %s: the runc default attack did not reproduce", rep.Joined, victim.Session)
	}
	if rep.Key == nil || !rep.Key.Found || !rep.Key.Readable || rep.Key.Payload != victimSecret {
		t.Errorf("the attacker did not read the victim's key (%+v): the runc default attack did not reproduce", rep.Key)
	}
}

// TestIsolationBaselineCrun documents that crun's own keyring <id> is not
// joinable by name (no search permission): the join makes a second keyring.
func TestIsolationBaselineCrun(t *testing.T) {
	crunDefault.require(t)
	v, victim := startVictim(t, crunDefault, "")
	checkKeyring(t, "victim @s", victim.Session, v.ID, permCrunDefault)
	rep := attack(t, crunDefault, "", v.ID)
	if rep.Joined.Serial == victim.Session.Serial {
		t.Errorf("the attacker joined the victim's keyring %s", victim.Session)
	}
	if rep.Key != nil && rep.Key.Found {
		t.Errorf("the attacker found the victim's key: %+v", rep.Key)
	}
}

// TestIsolation: with the hook on the victim, no attacker, with or without
// the hook, under any runtime, can join the victim's keyring by the victim's
// keyring name (the id) or by runc's name for it (_ses.<id>).
func TestIsolation(t *testing.T) {
	victims := []Runtime{runcDefault, runcNoNew, crunDefault}
	attackers := []struct {
		rt    Runtime
		stage string
	}{
		{runcDefault, ""},
		{runcNoNew, ""},
		{crunDefault, ""},
		{runcDefault, Prestart},
		{crunDefault, CreateRuntime},
	}
	for _, vrt := range victims {
		t.Run("victim-"+vrt.String(), func(t *testing.T) {
			vrt.require(t)
			v, victim := startVictim(t, vrt, Prestart)
			checkHookKeyring(t, v, victim, v.ID, Prestart, "named")
			for _, a := range attackers {
				for _, n := range []struct{ label, name string }{
					{"join-id", v.ID},
					{"join-_ses.id", "_ses." + v.ID},
				} {
					hook := "no-hook"
					if a.stage != "" {
						hook = "hook-" + a.stage
					}
					t.Run(fmt.Sprintf("%s/%s/%s", a.rt, hook, n.label), func(t *testing.T) {
						a.rt.require(t)
						rep := attack(t, a.rt, a.stage, n.name)
						if rep.Joined.Serial == victim.Session.Serial {
							t.Errorf("the attacker joined the victim's keyring %s", victim.Session)
						}
						if rep.Key != nil && rep.Key.Found {
							t.Errorf("the attacker found the victim's key: %+v", rep.Key)
						}
					})
				}
			}
		})
	}
}
