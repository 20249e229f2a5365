package test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Isolation attacks beyond TestIsolation (isolation_test.go, which joins
// a hooked victim's keyring by its id and by _ses.<id> from containers
// without a user namespace): the kernel's name for anonymous session
// keyrings, "_ses"; a victim in anonymous mode; victims and attackers in
// user namespaces, with the same mapping and with different ones; and
// reading the victim's key by its serial, as a guesser would. The
// attackers run without the hook, with keyctl allowed (no seccomp).

// mapping is where a container's root is on the host; 0 is no user
// namespace.
type mapping uint32

func (m mapping) String() string {
	if m == 0 {
		return "no-userns"
	}
	return "userns-" + strconv.Itoa(int(m))
}

func (m mapping) container(t *testing.T, rt Runtime, cfg Config) *Container {
	t.Helper()
	if m == 0 {
		return newContainer(t, rt, cfg)
	}
	return newMappedContainer(t, rt, cfg, uint32(m))
}

// startVictimAt starts a hooked victim holding victimSecret in its @s.
func startVictimAt(t *testing.T, rt Runtime, m mapping, ann map[string]string) (*Container, *Report) {
	t.Helper()
	c := m.container(t, rt, Config{Args: victimArgs(), HookStage: Prestart, Annotations: ann})
	r, out := c.Start()
	if r.ExitCode != 0 {
		t.Fatalf("the victim did not start: %s", r)
	}
	rep := out.WaitReport(t)
	if rep.Key == nil || !rep.Key.Found || rep.Session.Error != "" {
		t.Fatalf("the victim could not add its key: %+v %+v (error %q)", rep.Session, rep.Key, rep.Error)
	}
	if rep.Session.Perm != permHook {
		t.Fatalf("the victim's @s is %s, not the hook's", rep.Session)
	}
	return c, rep
}

// attackFrom runs an attacker container (no hook) with args and returns
// its report.
func attackFrom(t *testing.T, rt Runtime, m mapping, args ...string) *Report {
	t.Helper()
	c := m.container(t, rt, Config{Args: append([]string{"/probe"}, args...)})
	r := c.Run()
	if r.ExitCode != 0 {
		t.Fatalf("the attacker failed: %s", r)
	}
	return mustReport(t, r)
}

func TestIsolationSesAndUserNS(t *testing.T) {
	const usernsA = mapping(usernsHostID)
	victims := []struct {
		label string
		rt    Runtime
		m     mapping
		ann   map[string]string
	}{
		{"runc-no-new-keyring/no-userns", runcNoNew, 0, nil},
		{"runc-default/no-userns", runcDefault, 0, nil},
		{"crun-default/no-userns", crunDefault, 0, nil},
		{"runc-no-new-keyring/no-userns/anonymous", runcNoNew, 0, map[string]string{annoMode: "anonymous"}},
		{"runc-no-new-keyring/" + usernsA.String(), runcNoNew, usernsA, nil},
		{"runc-default/" + usernsA.String(), runcDefault, usernsA, nil},
		{"runc-no-new-keyring/" + usernsA.String() + "/anonymous", runcNoNew, usernsA, map[string]string{annoMode: "anonymous"}},
	}
	for _, v := range victims {
		t.Run("victim-"+v.label, func(t *testing.T) {
			v.rt.require(t)
			vc, victim := startVictimAt(t, v.rt, v.m, v.ann)
			t.Logf("victim %s: @s %s, key %d", vc.ID, victim.Session, victim.Key.Serial)
			// Attackers without a user namespace always; in user
			// namespaces with the victim's mapping and another one.
			attackers := []mapping{0, usernsA, mapping(otherHostID)}
			// An anonymous victim's keyring is itself named "_ses".
			names := []string{vc.ID, "_ses." + vc.ID, "_ses"}
			for _, am := range attackers {
				for _, name := range names {
					t.Run(fmt.Sprintf("%s/join-%s", am, label(name, vc.ID)), func(t *testing.T) {
						rep := attackFrom(t, runcDefault, am, "join", "-name", name, "-find", victimSecretDesc)
						if rep.Joined == nil {
							t.Fatalf("the attacker could not join %q: %s", name, rep.Error)
						}
						if rep.Joined.Serial == victim.Session.Serial {
							t.Errorf("the attacker joined the victim's keyring %s", victim.Session)
						}
						if rep.Key != nil && rep.Key.Found {
							t.Errorf("the attacker found the victim's key: %+v", rep.Key)
						}
					})
				}
				// The key's serial is no secret (serials are global); a
				// guesser still cannot read it: only a possessor may.
				t.Run(fmt.Sprintf("%s/read-by-serial", am), func(t *testing.T) {
					rep := attackFrom(t, runcDefault, am, "read", "-serial", strconv.Itoa(victim.Key.Serial))
					if rep.Key == nil || rep.Key.Readable || rep.Key.Payload == victimSecret {
						t.Errorf("the attacker read the victim's key %d by serial: %+v", victim.Key.Serial, rep.Key)
					} else {
						t.Logf("read %d: %s", victim.Key.Serial, rep.Key.Error)
					}
				})
			}
		})
	}
}

func label(name, id string) string {
	switch name {
	case id:
		return "id"
	case "_ses." + id:
		return "_ses.id"
	}
	return name
}

// TestIsolationAnnotationNamesAnotherKeyring: whoever creates a container
// chooses its keyring's name with io.oci-keyring-hook.name. Naming another
// container's searchable keyring (runc's own _ses.<id>, without the hook)
// must not land the container in it: the hook finds that the keyring it
// joined already existed, refuses, and the container never runs.
func TestIsolationAnnotationNamesAnotherKeyring(t *testing.T) {
	runcDefault.require(t)
	runcNoNew.require(t)
	v, victim := startVictim(t, runcDefault, "")
	checkKeyring(t, "victim @s", victim.Session, "_ses."+v.ID, permRuncDefault)
	c := newContainer(t, runcNoNew, Config{
		Args:        []string{"/probe", "show", "-find", victimSecretDesc, "-marker", probeMarker},
		HookStage:   Prestart,
		Annotations: map[string]string{annoName: victim.Session.Name},
	})
	r := c.Run()
	if r.ExitCode == 0 || strings.Contains(r.Stdout, probeMarker) {
		t.Fatalf("the container started in another container's keyring: %s", r)
	}
	for _, want := range []string{"already existed and is searchable by others", victim.Session.Name} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("runc's error does not say %q:\n%s", want, r.Stderr)
		}
	}
}
