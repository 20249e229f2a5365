package test

import (
	"context"
	"strings"
	"testing"
)

// TestAnnotations checks the per-container choices (io.oci-keyring-hook.*),
// with the hook at prestart under runc's default.
func TestAnnotations(t *testing.T) {
	rt := runcDefault

	t.Run("mode-anonymous", func(t *testing.T) {
		rt.require(t)
		c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart,
			Annotations: map[string]string{annoMode: "anonymous"}})
		rep := checkProbeRan(t, c.Run())
		checkHookKeyring(t, c, rep, "_ses", Prestart, "anonymous")
		checkHostSecret(t, rep, false)
	})

	t.Run("name-custom", func(t *testing.T) {
		rt.require(t)
		c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart,
			Annotations: map[string]string{annoName: "custom-name.1"}})
		rep := checkProbeRan(t, c.Run())
		checkHookKeyring(t, c, rep, "custom-name.1", Prestart, "named")
	})

	// Two containers asking for the same name each get their own keyring.
	t.Run("name-custom-twice", func(t *testing.T) {
		rt.require(t)
		anno := map[string]string{annoName: "okh-shared-name." + newID()}
		var serials []int
		for range 2 {
			c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart, Annotations: anno})
			rep := checkProbeRan(t, c.Run())
			checkHookKeyring(t, c, rep, anno[annoName], Prestart, "named")
			serials = append(serials, rep.Session.Serial)
		}
		if serials[0] == serials[1] {
			t.Errorf("two containers share keyring %d", serials[0])
		}
	})

	// Invalid annotations: fail closed, the container never runs.
	for _, bad := range []struct{ name, key, value string }{
		{"name-with-space", annoName, "bad name"},
		{"name-dot-hidden", annoName, ".hidden"},
		{"mode-unknown", annoMode, "bogus"},
	} {
		t.Run("invalid/"+bad.name, func(t *testing.T) {
			rt.require(t)
			c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart,
				Annotations: map[string]string{bad.key: bad.value}})
			r := c.Run()
			if r.ExitCode == 0 || r.ExitCode == probeExit {
				t.Errorf("the runtime exited %d, want a failure of its own", r.ExitCode)
			}
			if strings.Contains(r.Stdout, probeMarker) || strings.Contains(r.Stderr, "probe-marker") {
				t.Errorf("the probe ran although the hook failed:\n%s", r)
			}
			if !strings.Contains(r.Stderr, bad.key) {
				t.Errorf("the runtime's error output does not mention %s:\n%s", bad.key, r.Stderr)
			}
			// Nothing of the container is left behind.
			ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
			defer cancel()
			if l := execute(c.command(ctx, "list", "-q")); strings.Contains(l.Stdout, c.ID) {
				t.Errorf("the container is still listed after the failed start:\n%s", l)
			}
		})
	}

	// --no-annotations: the admin ignores what containers ask for.
	t.Run("no-annotations", func(t *testing.T) {
		for _, a := range []struct{ name, key, value string }{
			{"name-custom", annoName, "custom-name.1"},
			{"mode-anonymous", annoMode, "anonymous"},
			{"name-invalid", annoName, "bad name"},
		} {
			t.Run(a.name, func(t *testing.T) {
				rt.require(t)
				c := newContainer(t, rt, Config{Args: showArgs(), HookStage: Prestart,
					HookArgs:    []string{"--no-annotations"},
					Annotations: map[string]string{a.key: a.value}})
				rep := checkProbeRan(t, c.Run())
				checkHookKeyring(t, c, rep, c.ID, Prestart, "named")
			})
		}
	})
}
