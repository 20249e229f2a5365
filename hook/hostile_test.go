package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/spec"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Hostile input: every case runs the real hook binary as a sibling of a
// stand-in init (as under a runtime), feeds it something a runtime would
// never send or a container's creator could, and checks that
//
//   - the hook exits 1 with exactly one line on stderr that says what was
//     wrong, without a Go panic or trace, and without raw control bytes;
//   - the stand-in is untouched: untraced, its interrupted read completes
//     with the data written to it, and the program it execs still has the
//     host's session keyring.
//
// TestHookRefusesUntouched (standin_test.go) already covers pid 0 and 1,
// the hook's parent, a process that is not the runtime's child, status
// "stopped", a state truncated after 20 bytes, a name annotation with a space, mode
// "shared" and an id that is not a keyring name; they are not repeated.

// hostileCase is one bad input. state builds stdin from the stand-in's pid
// (or stdin is set by setup); want is a substring of the stderr line.
type hostileCase struct {
	name  string
	kind  standin.Kind // the stand-in; CRead if empty
	state func(t *testing.T, pid int) string
	args  []string
	want  string
}

func stateJSON(id string, pid any, status string, extra string) string {
	p, _ := jsonValue(pid)
	s := fmt.Sprintf(`{"ociVersion":"1.0.2","id":%s,"status":%s,"pid":%s,"bundle":"/nonexistent"`, jsonString(id), jsonString(status), p)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// jsonValue renders pid as JSON: numbers as numbers, strings verbatim
// (raw JSON text such as "1e30" or "\"12\"").
func jsonValue(v any) (string, error) {
	switch v := v.(type) {
	case int:
		return strconv.Itoa(v), nil
	case string:
		return v, nil
	}
	return "", fmt.Errorf("unsupported %T", v)
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func fixed(s string) func(*testing.T, int) string { return func(*testing.T, int) string { return s } }

func withPid(f func(pid int) string) func(*testing.T, int) string {
	return func(_ *testing.T, pid int) string { return f(pid) }
}

func annotated(ann string) func(*testing.T, int) string {
	return withPid(func(pid int) string { return stateJSON("c", pid, "creating", `"annotations":`+ann) })
}

func TestHookHostileState(t *testing.T) {
	testutil.RequiresRoot(t)
	const big = spec.MaxStateSize
	for _, tc := range []hostileCase{
		// Not JSON, or not one object.
		{name: "empty", state: fixed(""), want: "empty input"},
		{name: "whitespace only", state: fixed(" \n\t\r "), want: "empty input"},
		{name: "null", state: fixed("null"), want: "want a JSON object, got null"},
		{name: "array", state: fixed(`[{"id":"c"}]`), want: "want a JSON object, got array"},
		{name: "string", state: fixed(`"{}"`), want: "want a JSON object, got string"},
		{name: "number", state: fixed(`42`), want: "want a JSON object, got number"},
		{name: "boolean", state: fixed(`true`), want: "want a JSON object, got bool"},
		{name: "truncated after a comma", state: fixed(`{"id":"c",`), want: "unexpected end of JSON input"},
		{name: "trailing garbage", state: withPid(func(pid int) string { return stateJSON("c", pid, "creating", "") + "x" }), want: "after top-level value"},
		{name: "two objects", state: withPid(func(pid int) string { return stateJSON("c", pid, "creating", "") + "{}" }), want: "after top-level value"},
		{name: "byte order mark", state: withPid(func(pid int) string { return "\xef\xbb\xbf" + stateJSON("c", pid, "creating", "") }), want: "looking for beginning of value"},
		{name: "NUL byte in a string", state: fixed("{\"id\":\"c\x00\"}"), want: `invalid character '\x00' in string literal`},
		{name: "invalid UTF-8 outside strings", state: fixed("{\xff}"), want: "invalid character"},
		{name: "deep nesting", state: fixed(`{"a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "}"), want: "exceeded max depth"},
		{name: "oversized", state: withPid(func(pid int) string {
			s := stateJSON("c", pid, "creating", "")
			return s + strings.Repeat(" ", big+1-len(s))
		}), want: fmt.Sprintf("larger than the limit of %d bytes", big)},
		{name: "oversized annotation", state: withPid(func(pid int) string {
			return stateJSON("c", pid, "creating", `"annotations":{"x":"`+strings.Repeat("a", big)+`"}`)
		}), want: "larger than the limit"},

		// Missing or wrongly typed members.
		{name: "empty object", state: fixed(`{}`), want: "missing or empty id"},
		{name: "missing id", state: withPid(func(pid int) string {
			return fmt.Sprintf(`{"status":"creating","pid":%d}`, pid)
		}), want: "missing or empty id"},
		{name: "empty id", state: withPid(func(pid int) string { return stateJSON("", pid, "creating", "") }), want: "missing or empty id"},
		{name: "id a number", state: withPid(func(pid int) string {
			return fmt.Sprintf(`{"id":7,"status":"creating","pid":%d}`, pid)
		}), want: `field "id"`},
		{name: "missing pid", state: fixed(`{"id":"c","status":"creating"}`), want: "missing pid"},
		{name: "pid null", state: fixed(`{"id":"c","status":"creating","pid":null}`), want: "missing pid"},
		{name: "pid a string", state: withPid(func(pid int) string { return stateJSON("c", fmt.Sprintf(`"%d"`, pid), "creating", "") }), want: `field "pid"`},
		{name: "pid a fraction", state: withPid(func(pid int) string { return stateJSON("c", fmt.Sprintf(`%d.5`, pid), "creating", "") }), want: `field "pid"`},
		{name: "pid an exponent", state: fixed(stateJSON("c", "1e30", "creating", "")), want: `field "pid"`},
		{name: "pid an object", state: fixed(stateJSON("c", `{"pid":2}`, "creating", "")), want: `field "pid"`},
		{name: "missing status", state: withPid(func(pid int) string {
			return fmt.Sprintf(`{"id":"c","pid":%d}`, pid)
		}), want: `status "": want "creating" or "created"`},
		{name: "status a number", state: withPid(func(pid int) string {
			return fmt.Sprintf(`{"id":"c","status":1,"pid":%d}`, pid)
		}), want: `field "status"`},
		{name: "bundle a number", state: withPid(func(pid int) string {
			return fmt.Sprintf(`{"id":"c","status":"creating","pid":%d,"bundle":5}`, pid)
		}), want: `field "bundle"`},
		{name: "annotations an array", state: annotated(`["a","b"]`), want: `field "annotations"`},
		{name: "annotation value a number", state: annotated(`{"io.oci-keyring-hook.mode":1}`), want: `field "annotations`},

		// Pids that are not the container's init.
		{name: "pid -1", state: fixed(stateJSON("c", -1, "creating", "")), want: "pid -1 is not a container process"},
		{name: "pid most negative", state: fixed(stateJSON("c", "-9223372036854775808", "creating", "")), want: "is not a container process"},
		{name: "pid PID_MAX_LIMIT", state: fixed(stateJSON("c", 1<<22, "creating", "")), want: "out of range"},
		{name: "pid 2^31", state: fixed(stateJSON("c", 1<<31, "creating", "")), want: "out of range"},
		{name: "pid 2^63-1", state: fixed(stateJSON("c", "9223372036854775807", "creating", "")), want: "out of range"},
		{name: "pid 2^64", state: fixed(stateJSON("c", "18446744073709551616", "creating", "")), want: `field "pid"`},
		{name: "pid 2 (kthreadd)", state: fixed(stateJSON("c", 2, "creating", "")), want: "is a child of pid 0, not of the runtime"},
		{name: "pid of no process", state: func(t *testing.T, _ int) string { return stateJSON("c", reapedPid(t), "creating", "") }, want: "no such process"},
		{name: "pid of a zombie", state: func(t *testing.T, _ int) string { return stateJSON("c", zombie(t), "creating", "") }, want: "has exited (state Z)"},
		// A side thread of the runtime's child passes the parent check
		// (/proc/<tid>/stat shows the process's parent).
		{name: "pid of a thread, not a process", kind: standin.GoRead, state: func(t *testing.T, pid int) string {
			return stateJSON("c", otherThread(t, pid), "creating", "")
		}, want: "is a thread of process"},

		// Statuses after the container's program has started, or made up.
		{name: "status running", state: withPid(func(pid int) string { return stateJSON("c", pid, "running", "") }), want: `status "running"`},
		{name: "status paused", state: withPid(func(pid int) string { return stateJSON("c", pid, "paused", "") }), want: `status "paused"`},
		{name: "status in capitals", state: withPid(func(pid int) string { return stateJSON("c", pid, "CREATING", "") }), want: `status "CREATING"`},
		{name: "status with a control byte", state: withPid(func(pid int) string { return stateJSON("c", pid, "creating\x1b[2J", "") }), want: `status "creating\x1b[2J"`},

		// Ids the default name template cannot use.
		{name: "id with an escape sequence", state: withPid(func(pid int) string { return stateJSON("c\x1b[31m", pid, "creating", "") }), want: `'\x1b' (0x1b)`},
		{name: "id with a newline", state: withPid(func(pid int) string { return stateJSON("a\nb", pid, "creating", "") }), want: `'\n' (0x0a)`},
		{name: "id of 512 KiB", state: withPid(func(pid int) string { return stateJSON(strings.Repeat("i", 512<<10), pid, "creating", "") }), want: "bytes long"},

		// Annotations: whoever creates the container chooses them.
		{name: "name with an escape sequence", state: annotated(`{"io.oci-keyring-hook.name":"\u001b[31mred"}`), want: `contains '\x1b' (0x1b) at byte 0`},
		{name: "name with a newline", state: annotated(`{"io.oci-keyring-hook.name":"a\nb"}`), want: `contains '\n' (0x0a) at byte 1`},
		{name: "name with NUL", state: annotated(`{"io.oci-keyring-hook.name":"a\u0000b"}`), want: `contains '\x00' (0x00) at byte 1`},
		{name: "name with a tab", state: annotated(`{"io.oci-keyring-hook.name":"a\tb"}`), want: `contains '\t' (0x09) at byte 1`},
		{name: "name a path", state: annotated(`{"io.oci-keyring-hook.name":"../x"}`), want: `starts with '.'`},
		{name: "name with a slash", state: annotated(`{"io.oci-keyring-hook.name":"a/b"}`), want: `contains '/' (0x2f) at byte 1`},
		{name: "name with UTF-8", state: annotated(`{"io.oci-keyring-hook.name":"caf\u00e9"}`), want: "contains byte 0xc3 at byte 3"},
		{name: "name with a leading dot", state: annotated(`{"io.oci-keyring-hook.name":".hidden"}`), want: "starts with '.'"},
		{name: "name of 256 bytes", state: annotated(`{"io.oci-keyring-hook.name":"` + strings.Repeat("n", 256) + `"}`), want: "is 256 bytes long"},
		{name: "name of 512 KiB", state: annotated(`{"io.oci-keyring-hook.name":"` + strings.Repeat("n", 512<<10) + `"}`), want: "bytes long"},
		{name: "name empty", state: annotated(`{"io.oci-keyring-hook.name":""}`), want: "is empty"},
		{name: "mode empty", state: annotated(`{"io.oci-keyring-hook.mode":""}`), want: `value "" is not a mode`},
		{name: "mode in capitals", state: annotated(`{"io.oci-keyring-hook.mode":"NAMED"}`), want: `value "NAMED" is not a mode`},
		{name: "mode with a newline", state: annotated(`{"io.oci-keyring-hook.mode":"named\n"}`), want: `value "named\n" is not a mode`},
		{name: "mode anonymous with a name", state: annotated(`{"io.oci-keyring-hook.mode":"anonymous","io.oci-keyring-hook.name":"x"}`), want: "contradicts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			if kind == "" {
				kind = standin.CRead
			}
			p := standin.Start(t, kind)
			r := runHook(t, tc.state(t, p.Pid), append(tc.args, "prestart")...)
			checkRefusal(t, r, tc.want)
			assertUntouched(t, p, standin.Current())
		})
	}
}

// The hook's own pid and its ancestors, which the test cannot know before
// the hook starts: a shell writes its own pid ($$) into the state and
// execs the hook, which keeps that pid, or runs it as a child.
func TestHookHostilePidsOfTheHook(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name   string
		script string
		want   string
	}{
		{"the hook itself", `exec "$0" --log-file /dev/null prestart <<EOF
{"id":"c","status":"creating","pid":$$}
EOF`, "is the hook itself"},
		{"the hook's parent", `"$0" --log-file /dev/null prestart <<EOF
{"id":"c","status":"creating","pid":$$}
EOF`, "is an ancestor of the hook"},
		{"the hook's grandparent", `"$0" --log-file /dev/null prestart <<EOF
{"id":"c","status":"creating","pid":$PPID}
EOF`, "is an ancestor of the hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standin.Start(t, standin.CRead)
			cmd := exec.Command("sh", "-c", tc.script, hookBinary)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			r := ended(t, err, stderr.String())
			checkRefusal(t, r, tc.want)
			assertUntouched(t, p, standin.Current())
		})
	}
}

// Stdin that never ends: the hook reads at most MaxStateSize+1 bytes of
// it, or gives up at --timeout when the runtime never closes it.
func TestHookHostileStdin(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name  string
		stdin func(t *testing.T) *os.File
		want  string
	}{
		{"endless (/dev/zero)", func(t *testing.T) *os.File {
			f, err := os.Open("/dev/zero")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}, "larger than the limit"},
		{"never closed", func(t *testing.T) *os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			w.WriteString(`{"id":"c",`)
			return r
		}, "no end of input after 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := standin.Start(t, standin.CRead)
			cmd := exec.Command(hookBinary, "--log-file", filepath.Join(t.TempDir(), "log"), "--timeout", "300ms", "prestart")
			cmd.Stdin = tc.stdin(t)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the hook took %v", d)
			}
			r := ended(t, err, stderr.String())
			checkRefusal(t, r, tc.want)
			assertUntouched(t, p, standin.Current())
		})
	}
}

// The target exits while the hook is still reading the state: the runtime
// writes it slowly and the target is killed before stdin is closed.
func TestHookTargetExitsWhileReadingState(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, reap := range []bool{false, true} {
		name, want := "zombie", "has exited (state Z)"
		if reap {
			name, want = "reaped", "no such process"
		}
		t.Run(name, func(t *testing.T) {
			p := standin.Start(t, standin.CRead)
			state := stateJSON("c", p.Pid, "creating", "")
			cmd := exec.Command(hookBinary, "--log-file", filepath.Join(t.TempDir(), "log"), "prestart")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			half := len(state) / 2
			write := func(s string) {
				if _, err := stdin.Write([]byte(s)); err != nil {
					t.Errorf("writing the state: %v", err)
				}
			}
			write(state[:half])
			time.Sleep(50 * time.Millisecond) // the hook is blocked reading
			if err := unix.Kill(p.Pid, unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if reap {
				var ws unix.WaitStatus
				if _, err := unix.Wait4(p.Pid, &ws, 0, nil); err != nil {
					t.Fatal(err)
				}
			} else {
				waitProcState(t, p.Pid, 'Z')
			}
			write(state[half:])
			stdin.Close()
			err = cmd.Wait()
			r := ended(t, err, stderr.String())
			checkRefusal(t, r, want)
		})
	}
}

// config.json is read when the state carries no annotations (runc). The
// container's creator writes it; the hook opens it without following a
// symbolic link, refuses anything but a regular file up to 16 MiB, and
// fails closed on any error.
func TestHookHostileConfig(t *testing.T) {
	testutil.RequiresRoot(t)
	const badAnnotation = `{"annotations":{"io.oci-keyring-hook.name":"bad name"}}`
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		args  []string // extra argv before the hook (e.g. setpriv)
		want  string
	}{
		{"symbolic link", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "real.json")
			writeFileT(t, target, `{"annotations":{"io.oci-keyring-hook.name":"from-link"}}`, 0o644)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, nil, "must not be a symbolic link"},
		{"symbolic link to /dev/zero", func(t *testing.T, path string) {
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		}, nil, "must not be a symbolic link"},
		{"FIFO without a writer", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, "is a FIFO, not a regular file"},
		{"character device", func(t *testing.T, path string) {
			if err := unix.Mknod(path, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil { // /dev/zero
				t.Fatal(err)
			}
		}, nil, "is a character device, not a regular file"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil, "is a directory, not a regular file"},
		{"larger than 16 MiB", func(t *testing.T, path string) {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(spec.MaxConfigSize + 1); err != nil { // sparse
				t.Fatal(err)
			}
		}, nil, "larger than the limit of 16777216"},
		{"not JSON", func(t *testing.T, path string) {
			writeFileT(t, path, "annotations: {}\n", 0o644)
		}, nil, "decoding"},
		{"deep nesting", func(t *testing.T, path string) {
			writeFileT(t, path, `{"annotations":{},"x":`+strings.Repeat("[", 200000)+strings.Repeat("]", 200000)+"}", 0o644)
		}, nil, "exceeded max depth"},
		{"annotations of the wrong type", func(t *testing.T, path string) {
			writeFileT(t, path, `{"annotations":"io.oci-keyring-hook.mode=anonymous"}`, 0o644)
		}, nil, `field "annotations"`},
		{"bad annotation", func(t *testing.T, path string) {
			writeFileT(t, path, badAnnotation, 0o644)
		}, nil, `annotation "io.oci-keyring-hook.name": value "bad name"`},
		// Mode 000 does not stop root: CAP_DAC_OVERRIDE reads it, and the
		// bad annotation inside is what refuses the container.
		{"mode 000, read by root", func(t *testing.T, path string) {
			writeFileT(t, path, badAnnotation, 0)
		}, nil, `annotation "io.oci-keyring-hook.name"`},
		// Without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH the file is
		// unreadable: the hook fails closed rather than ignore it.
		{"mode 000, unreadable", func(t *testing.T, path string) {
			writeFileT(t, path, `{"annotations":{}}`, 0)
		}, []string{"setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search", "--"}, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.args) > 0 {
				testutil.RequiresCommand(t, tc.args[0])
			}
			p := standin.Start(t, standin.CRead)
			bundle := t.TempDir()
			path := filepath.Join(bundle, "config.json")
			tc.setup(t, path)
			state := fmt.Sprintf(`{"ociVersion":"1.0.2","id":"c","status":"creating","pid":%d,"bundle":%q}`, p.Pid, bundle)
			argv := append(append([]string{}, tc.args...), hookBinary, "--log-file", filepath.Join(t.TempDir(), "log"), "prestart")
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Stdin = strings.NewReader(state)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the hook took %v", d)
			}
			r := ended(t, err, stderr.String())
			checkRefusal(t, r, tc.want)
			if !strings.Contains(r.stderr, path) && !strings.Contains(r.stderr, "annotation") {
				t.Errorf("the error does not name %s: %q", path, r.stderr)
			}
			assertUntouched(t, p, standin.Current())
		})
	}
}

// checkRefusal: exit 1, one line on stderr naming the problem, no panic,
// no raw control bytes (a hostile value must not rewrite a terminal or
// forge a second log line), and a bounded length.
func checkRefusal(t *testing.T, r hookRun, want string) {
	t.Helper()
	if r.code != exitFailure {
		t.Errorf("hook exited %d, want %d; stderr %q", r.code, exitFailure, clip(r.stderr))
	}
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "[signal "} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("the hook crashed (%q on stderr):\n%s", bad, clip(r.stderr))
		}
	}
	line, ok := strings.CutSuffix(r.stderr, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Errorf("stderr is not exactly one line: %q", clip(r.stderr))
	}
	if !strings.HasPrefix(line, "oci-keyring-hook: ") {
		t.Errorf("stderr line does not say who speaks: %q", clip(line))
	}
	if !strings.Contains(line, want) {
		t.Errorf("stderr line %q does not contain %q", clip(line), want)
	}
	if i := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		t.Errorf("stderr line has a raw control byte %#x at %d: %q", line[i], i, clip(line))
	}
	if len(line) > 1024 {
		t.Errorf("stderr line is %d bytes long: %q", len(line), clip(line))
	}
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func writeFileT(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// reapedPid returns the pid of a child of the test (the hook's parent) that
// has exited and been reaped.
func reapedPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// zombie returns the pid of a child of the test that has exited and is not
// reaped until the test ends.
func zombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	waitProcState(t, cmd.Process.Pid, 'Z')
	return cmd.Process.Pid
}

// otherThread returns the id of a thread of pid other than its main one.
func otherThread(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if tid, _ := strconv.Atoi(e.Name()); tid > 0 && tid != pid {
			return tid
		}
	}
	t.Fatalf("pid %d has no second thread", pid)
	return 0
}

func waitProcState(t *testing.T, pid int, want byte) {
	t.Helper()
	if got := waitProcStates(pid, want); got != want {
		t.Fatalf("pid %d never reached state %c: %s", pid, want, standin.State(pid))
	}
}

// waitProcStates waits until pid is in one of the states given and returns
// it, or 0 after about two seconds.
func waitProcStates(pid int, states ...byte) byte {
	for i := 0; i < 1000; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			if j := bytes.LastIndexByte(b, ')'); j > 0 && len(b) > j+2 && bytes.IndexByte(states, b[j+2]) >= 0 {
				return b[j+2]
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}
