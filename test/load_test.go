package test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Load: loadSequential containers one after the other, then loadWaves
// waves of loadConcurrent started at once, all under runc
// --no-new-keyring with the hook, half of them in a user namespace (root
// mapped to loadHostID), alternating prestart and createRuntime. Every one
// must start and get a keyring of its own, and once they have all exited
// every one of those keyrings must be gone and the key counts back where
// they were.
const (
	loadSequential = 80
	loadConcurrent = 20
	loadWaves      = 6
)

type loadRun struct {
	c *Container
	r *Result
}

func TestLoad(t *testing.T) {
	runcNoNew.require(t)
	h := host(t)
	waitKeysFreed(t, loadHostID, 60*time.Second)
	root0, _ := keyUser(t, 0)

	start1 := func(i int) loadRun {
		cfg := Config{Args: []string{"/probe", "show"}, HookStage: Prestart}
		if i%4 >= 2 {
			cfg.HookStage = CreateRuntime
		}
		var c *Container
		if i%2 == 1 {
			c = newMappedContainer(t, runcNoNew, cfg, loadHostID)
		} else {
			c = newContainer(t, runcNoNew, cfg)
		}
		return loadRun{c: c}
	}
	run := func(l *loadRun) {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		l.r = execute(l.c.command(ctx, l.c.runArgs(false)...))
	}

	var runs []loadRun
	t0 := time.Now()
	for i := 0; i < loadSequential; i++ {
		l := start1(i)
		run(&l)
		runs = append(runs, l)
	}
	seq := time.Since(t0)

	t1 := time.Now()
	var slowest time.Duration
	for w := 0; w < loadWaves; w++ {
		wave := make([]loadRun, loadConcurrent)
		for j := range wave {
			wave[j] = start1(len(runs) + j)
		}
		var ready, done sync.WaitGroup
		ready.Add(len(wave))
		done.Add(len(wave))
		gate := make(chan struct{})
		ws := time.Now()
		for j := range wave {
			go func(l *loadRun) {
				defer done.Done()
				ready.Done()
				<-gate
				run(l)
			}(&wave[j])
		}
		ready.Wait()
		close(gate)
		done.Wait()
		slowest = max(slowest, time.Since(ws))
		runs = append(runs, wave...)
	}
	conc := time.Since(t1)
	t.Logf("%d sequential starts in %v (%v each); %d waves of %d concurrent starts in %v (slowest wave %v)",
		loadSequential, seq, seq/loadSequential, loadWaves, loadConcurrent, conc, slowest)

	serials := map[int]string{}
	var userns, rootOwned int
	for i, l := range runs {
		if l.r.ExitCode != 0 {
			t.Errorf("start %d (%s) failed: %s", i, l.c.ID, l.r)
			continue
		}
		rep, err := parseReport(l.r.Stdout)
		if err != nil {
			t.Errorf("start %d: %v\n%s", i, err, l.r)
			continue
		}
		k := rep.Session
		if k.Error != "" || k.Name != l.c.ID || k.Perm != permHook || k.Serial == h.Session.Serial {
			t.Errorf("start %d (%s): @s %s; want a fresh keyring %q with %s (host's is %d)", i, l.c.ID, k, l.c.ID, permHook, h.Session.Serial)
		}
		if other, dup := serials[k.Serial]; dup {
			t.Errorf("start %d (%s) got keyring %d, as did %s", i, l.c.ID, k.Serial, other)
		}
		serials[k.Serial] = l.c.ID
		if log := l.c.Bundle.hookSuccess(t, l.c.ID); log.Serial != k.Serial {
			t.Errorf("start %d: the hook logged serial %d, the container had %d", i, log.Serial, k.Serial)
		}
		if i%2 == 1 {
			userns++
		} else {
			rootOwned++
		}
	}
	if t.Failed() {
		return
	}

	// Every container has exited: its keyring has lost its last reference
	// (the init's credentials), so the kernel no longer finds it. ENOKEY,
	// not EACCES (which a live keyring of another owner gives).
	t2 := time.Now()
	deadline := t2.Add(30 * time.Second)
	for serial, id := range serials {
		for {
			_, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, serial)
			if errors.Is(err, unix.ENOKEY) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("keyring %d of %s still there after the container exited: %v", serial, id, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	gone := time.Since(t2)
	// The user-namespaced containers' owner is this test's own uid: its
	// count must go back to nothing.
	freed := waitKeysFreed(t, loadHostID, 60*time.Second)
	root1, _ := keyUser(t, 0)
	t.Logf("%d keyrings (%d owned by uid %d, %d by uid 0), all distinct; gone %v after the last exit, uid %d's quota empty after %v; uid 0 keys %d -> %d",
		len(serials), userns, loadHostID, rootOwned, gone, loadHostID, freed, root0.QuotaKeys, root1.QuotaKeys)
	// uid 0 is shared with everything else on the host, tests of other
	// packages included, which run at the same time: a leak of these
	// containers' keyrings would add rootOwned keys; allow for others'
	// short-lived ones.
	if grown := root1.QuotaKeys - root0.QuotaKeys; grown >= rootOwned/2 {
		t.Errorf("uid 0 owns %d more keys than before %d root containers (%d -> %d): a leak?", grown, rootOwned, root0.QuotaKeys, root1.QuotaKeys)
	}
}
