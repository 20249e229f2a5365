package test

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

// TestPodman installs the hook with `make install` (and `make install-optin`)
// into temporary prefixes, hands podman the installed hooks.d directory and
// runs the probe through `podman run` with runc. What the probe reports from
// inside the container is the evidence; the hook logs to syslog or to the
// runtime, neither of which the test reads.
func TestPodman(t *testing.T) {
	p := newPodman(t)
	always := installHook(t, "install")
	optin := installHook(t, "install-optin")
	noHooks := t.TempDir() // no hooks.d file at all: podman as shipped
	h := host(t)

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	customName := "okh-podman-" + hex.EncodeToString(b)

	var (
		hostKeyring = func(string) string { return h.Session.Name }
		idName      = func(cid string) string { return cid }
		runcName    = func(cid string) string { return "_ses." + cid }
		anonymous   = func(string) string { return "_ses" }
		custom      = func(string) string { return customName }
	)
	tests := []struct {
		name        string
		hooksDir    string
		keyring     podmanKeyring // containers.conf keyring; true is podman's default
		annotations map[string]string
		wantName    func(cid string) string
		wantPerm    string // "" for the host's keyring
	}{
		// Baseline: what the hook is for. keyring=false hands the
		// container the keyring podman was started in.
		{"keyring=false/no hook", noHooks, false, nil, hostKeyring, ""},

		{"keyring=true/hook", always, true, nil, idName, permHook},
		{"keyring=false/hook", always, false, nil, idName, permHook},
		{"keyring=true/hook/mode=anonymous", always, true, map[string]string{annoMode: "anonymous"}, anonymous, permHook},
		{"keyring=false/hook/name", always, false, map[string]string{annoName: customName}, custom, permHook},

		// The opt-in file leaves unannotated containers as the runtime
		// makes them: runc's joinable _ses.<id>, or with keyring=false the
		// host's keyring.
		{"keyring=true/optin/unannotated", optin, true, nil, runcName, permRuncDefault},
		{"keyring=false/optin/unannotated", optin, false, nil, hostKeyring, ""},
		// Only the mode annotation opts in: a name alone does not match.
		{"keyring=true/optin/name only", optin, true, map[string]string{annoName: customName}, runcName, permRuncDefault},
		{"keyring=true/optin/mode=named", optin, true, map[string]string{annoMode: "named"}, idName, permHook},
		{"keyring=false/optin/mode=anonymous", optin, false, map[string]string{annoMode: "anonymous"}, anonymous, permHook},
		{"keyring=false/optin/mode=named+name", optin, false, map[string]string{annoMode: "named", annoName: customName}, custom, permHook},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, cid := p.Run(PodmanRun{
				HooksDir: tc.hooksDir, Keyring: tc.keyring, Annotations: tc.annotations,
				Args: []string{"/probe", "show", "-find", hostSecretDesc},
			})
			if r.ExitCode != 0 {
				t.Fatalf("podman run failed: %s", r)
			}
			rep := mustReport(t, r)
			t.Logf("host @s: %s; container %s @s: %s", h.Session, cid, rep.Session)
			if rep.PID != 1 {
				t.Errorf("probe pid = %d, want 1 (the container's init)", rep.PID)
			}
			if tc.wantPerm == "" {
				if rep.Session.Serial != h.Session.Serial {
					t.Errorf("container @s = %s, want the host's %s", rep.Session, h.Session)
				}
				checkHostSecret(t, rep, true)
				return
			}
			if rep.Session.Serial == h.Session.Serial {
				t.Fatalf("the container has the host's session keyring %s", h.Session)
			}
			checkKeyring(t, "container @s", rep.Session, tc.wantName(cid), tc.wantPerm)
			checkHostSecret(t, rep, false)
		})
	}

	// Fail closed through podman: the hook refuses an invalid annotation,
	// podman reports the hook's reason and the probe never runs. The
	// opt-in file matches any mode value so that a misspelt one is
	// refused too, not run without the hook.
	for _, tc := range []struct {
		name     string
		hooksDir string
		mode     string
	}{
		{"keyring=false/hook/invalid mode", always, "bogus"},
		{"keyring=false/optin/misspelt mode", optin, "Anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := p.Run(PodmanRun{
				HooksDir: tc.hooksDir, Keyring: false, Annotations: map[string]string{annoMode: tc.mode},
				Args: []string{"/probe", "show", "-marker", probeMarker},
			})
			if r.ExitCode == 0 {
				t.Fatalf("podman ran a container the hook refused: %s", r)
			}
			for _, want := range []string{"oci-keyring-hook", annoMode, tc.mode} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("podman's error does not carry the hook's reason (%q):\n%s", want, r.Stderr)
				}
			}
			if strings.Contains(r.Stdout+r.Stderr, "probe-marker: "+probeMarker) {
				t.Errorf("the probe ran:\n%s", r)
			}
		})
	}
}
