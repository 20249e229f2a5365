package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// hookRun is one run of the hook binary against a stand-in init.
type hookRun struct {
	code   int
	stderr string
	log    map[string]any // the last JSON log line, if any
}

// ended turns how a hook command ended into a hookRun; failing to run it
// at all fails the test.
func ended(t *testing.T, err error, stderr string) hookRun {
	t.Helper()
	r := hookRun{stderr: stderr}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running the hook: %v", err)
	}
	return r
}

// runHook runs the hook as a sibling of the target, as a runtime does, and
// feeds it state on stdin.
func runHook(t *testing.T, state string, args ...string) hookRun {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "hook.log")
	args = append([]string{"--log-format", "json", "--log-file", logFile}, args...)
	cmd := exec.Command(hookBinary, args...)
	cmd.Stdin = strings.NewReader(state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := ended(t, err, stderr.String())
	if b, err := os.ReadFile(logFile); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			r.log = map[string]any{}
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.UseNumber()
			if err := dec.Decode(&r.log); err != nil {
				t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
			}
		}
	}
	return r
}

func runcState(id string, pid int, annotations map[string]string) string {
	b, _ := json.Marshal(map[string]any{"ociVersion": "1.0.2-dev", "id": id, "status": "creating", "pid": pid, "bundle": "/nonexistent", "annotations": annotations})
	return string(b)
}

func crunState(id string, pid int) string {
	return fmt.Sprintf(`{"ociVersion":"1.0.0","id":%q,"pid":%d,"root":"/run/crun/%s","bundle":"/nonexistent","created":"2026-11-29T00:00:00Z","status":"created"}`, id, pid, id)
}

// TestHookGivesStandinsAPrivateKeyring runs the real binary against each
// stand-in: the target must finish its interrupted call normally and exec
// with the new keyring the hook logged.
func TestHookGivesStandinsAPrivateKeyring(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	for _, kind := range standin.All {
		for _, stage := range []string{"prestart", "createRuntime"} {
			t.Run(fmt.Sprintf("%s/%s", kind, stage), func(t *testing.T) {
				p := standin.Start(t, kind)
				id := fmt.Sprintf("ctr-%s-%d", kind, p.Pid)
				state := runcState(id, p.Pid, nil)
				if stage == "createRuntime" {
					state = crunState(id, p.Pid)
				}
				r := runHook(t, state, stage)
				if r.code != 0 {
					t.Fatalf("hook exited %d: %s", r.code, r.stderr)
				}
				if err := p.Release("hello"); err != nil {
					t.Fatal(err)
				}
				rep, k, err := p.Finish(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if kind == standin.CNanosleep {
					if rep.Ret != 0 || rep.ElapsedMS < 600 {
						t.Errorf("nanosleep ended with %+v", rep)
					}
				} else if rep.Ret != 5 || rep.Data != "hello" {
					t.Errorf("%s ended with %+v", rep.Call, rep)
				}
				if k.Serial == host.Serial || k.Name != id || k.Perm != "3f010000" {
					t.Errorf("keyring after exec %+v; want a new keyring %q perm 3f010000 (host's is %d)", k, id, host.Serial)
				}
				if got := fmt.Sprint(r.log["serial"]); got != fmt.Sprint(k.Serial) {
					t.Errorf("hook logged serial %s, process has %d: %v", got, k.Serial, r.log)
				}
				for _, f := range []string{"id", "pid", "stage", "mode", "name", "perm", "enter_us", "install_us", "total_us"} {
					if _, ok := r.log[f]; !ok {
						t.Errorf("log line lacks %q: %v", f, r.log)
					}
				}
				if r.log["user_keyring"] != "host's" {
					t.Errorf("no warning that @u is the host's: %v", r.log)
				}
			})
		}
	}
}

// TestHookRefusesUntouched: bad input ends in exit 1 with one clear line,
// and the target is not touched: it keeps the host's keyring.
func TestHookRefusesUntouched(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	for _, tc := range []struct {
		name  string
		state func(pid int) string
		args  []string
		want  string
	}{
		{"pid 1", func(int) string { return runcState("c", 1, nil) }, nil, "pid 1"},
		{"pid 0", func(int) string { return runcState("c", 0, nil) }, nil, "pid"},
		{"the hook's parent", func(int) string { return runcState("c", os.Getpid(), nil) }, nil, "ancestor"},
		{"not the runtime's child", func(int) string { return runcState("c", grandchild(t), nil) }, nil, "not of the runtime"},
		{"stopped status", func(pid int) string { return strings.Replace(runcState("c", pid, nil), "creating", "stopped", 1) }, nil, "status"},
		{"truncated", func(pid int) string { return runcState("c", pid, nil)[:20] }, nil, "invalid container state"},
		{"bad name annotation", func(pid int) string {
			return runcState("c", pid, map[string]string{"io.oci-keyring-hook.name": "has space"})
		}, nil, "io.oci-keyring-hook.name"},
		{"bad mode annotation", func(pid int) string {
			return runcState("c", pid, map[string]string{"io.oci-keyring-hook.mode": "shared"})
		}, nil, "io.oci-keyring-hook.mode"},
		{"id not a name", func(pid int) string { return runcState("bad id", pid, nil) }, nil, "--name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standin.Start(t, standin.CRead)
			r := runHook(t, tc.state(p.Pid), append(tc.args, "prestart")...)
			if r.code != exitFailure || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("hook exited %d with stderr %q; want exit 1 and one line mentioning %q", r.code, r.stderr, tc.want)
			}
			assertUntouched(t, p, host)
		})
	}
}

func TestHookFailOpen(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	p := standin.Start(t, standin.CRead)
	r := runHook(t, runcState("c", p.Pid, map[string]string{"io.oci-keyring-hook.name": ".hidden"}), "--fail-open", "prestart")
	if r.code != exitOK || !strings.Contains(r.stderr, "--fail-open") {
		t.Errorf("--fail-open: exit %d, stderr %q; want 0 and a line saying so", r.code, r.stderr)
	}
	assertUntouched(t, p, host)
}

func TestHookAnnotations(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		args        []string
		wantName    string
	}{
		{"anonymous", map[string]string{"io.oci-keyring-hook.mode": "anonymous"}, nil, "_ses"},
		{"custom name", map[string]string{"io.oci-keyring-hook.name": "custom-name.1"}, nil, "custom-name.1"},
		{"ignored", map[string]string{"io.oci-keyring-hook.name": "custom-name.1"}, []string{"--no-annotations"}, "ID"},
		{"admin anonymous", nil, []string{"--mode", "anonymous"}, "_ses"},
		{"admin template", nil, []string{"--name", "k8s-{id}"}, "k8s-ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standin.Start(t, standin.GoRead)
			id := fmt.Sprintf("ann-%d", p.Pid)
			r := runHook(t, runcState(id, p.Pid, tc.annotations), append(tc.args, "prestart")...)
			if r.code != 0 {
				t.Fatalf("hook exited %d: %s", r.code, r.stderr)
			}
			p.Release("hello")
			_, k, err := p.Finish(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.wantName, "ID", id); k.Name != want || k.Perm != "3f010000" {
				t.Errorf("keyring %+v, want name %q perm 3f010000", k, want)
			}
		})
	}
}

func assertUntouched(t *testing.T, p *standin.Process, host standin.Keyring) {
	t.Helper()
	if tr := standin.TracerPid(p.Pid); tr != 0 {
		t.Errorf("target left traced by %d", tr)
	}
	p.Release("hello")
	rep, k, err := p.Finish(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ret != 5 || rep.Data != "hello" {
		t.Errorf("target's read ended with %+v", rep)
	}
	if k.Serial != host.Serial {
		t.Errorf("target's keyring changed to %+v; the host's is %d", k, host.Serial)
	}
}

// grandchild starts a process that is not a child of the hook's parent.
func grandchild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 30 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// A target that never stops: the hook gives up at --timeout, and on
// SIGTERM, exits 1 promptly and leaves the target untouched.
func TestHookTimeoutAndSignal(t *testing.T) {
	testutil.RequiresRoot(t)
	host := standin.Current()
	for _, tc := range []struct {
		name   string
		args   []string
		signal syscall.Signal
		want   string
	}{
		{"timeout", []string{"--timeout", "300ms"}, 0, "timed out"},
		{"SIGTERM", []string{"--timeout", "20s"}, syscall.SIGTERM, "canceled"},
		{"SIGINT", []string{"--timeout", "20s"}, syscall.SIGINT, "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standin.Start(t, standin.GoRead)
			thaw := standin.Freeze(t, p.Pid)
			cmd := exec.Command(hookBinary, append(tc.args, "prestart")...)
			cmd.Stdin = strings.NewReader(runcState("frozen", p.Pid, nil))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tc.signal != 0 {
				// Let it attach and wait for the stop that never comes.
				for i := 0; i < 1000 && standin.TracerPid(p.Pid) == 0; i++ {
					time.Sleep(time.Millisecond)
				}
				if standin.TracerPid(p.Pid) == 0 {
					t.Fatalf("the hook never attached: %s", standin.State(p.Pid))
				}
				cmd.Process.Signal(tc.signal)
			}
			err := cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitFailure || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("hook ended with %v, stderr %q; want exit 1 mentioning %q", err, stderr.String(), tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("hook took %v to give up", d)
			}
			thaw()
			assertUntouched(t, p, host)
		})
	}
}
