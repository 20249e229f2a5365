package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

func TestCheckReportTable(t *testing.T) {
	r := newReport([]checkResult{
		{Check: "keyrings", Status: statusOK, Detail: "present"},
		{Check: "runtime youki", Status: statusWarn, Detail: "youki 0.1", Fix: "use runc"},
		{Check: "ptrace-scope", Status: statusFail, Detail: "YAMA ptrace_scope 3", Fix: "boot with 2"},
		{Check: "runtime crio", Status: statusInfo, Detail: "not found\non PATH"},
	})
	var out bytes.Buffer
	if err := r.writeTable(&out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"CHECK          STATUS  DETAIL",
		"keyrings       ok      present",
		"runtime youki  warn    youki 0.1; fix: use runc",
		"ptrace-scope   fail    YAMA ptrace_scope 3; fix: boot with 2",
		"runtime crio   info    not found on PATH",
		"",
		"the hook would NOT work here: 1 check(s) failed (1 warning(s))",
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	if r.OK || r.exitCode() != exitFailure {
		t.Errorf("report with a failure: OK %v, exit %d; want false, %d", r.OK, r.exitCode(), exitFailure)
	}

	good := newReport(r.Checks[:2])
	out.Reset()
	good.writeTable(&out)
	if !good.OK || good.exitCode() != exitOK || !strings.HasSuffix(out.String(), "\nthe hook would work here (1 warning(s))\n") {
		t.Errorf("report with a warning only: OK %v, exit %d, table\n%s", good.OK, good.exitCode(), out.String())
	}
}

func TestCheckReportJSON(t *testing.T) {
	r := newReport([]checkResult{
		{Check: "self-test", Status: statusFail, Detail: "EPERM", Fix: "run as root"},
		{Check: "keyrings", Status: statusOK, Detail: "present", Values: map[string]any{"n": 2}},
	})
	var out bytes.Buffer
	if err := r.writeJSON(&out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check, Status, Detail, Fix string
			Values                     map[string]any
		} `json:"checks"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if got.OK || len(got.Checks) != 2 || got.Checks[0].Check != "self-test" || got.Checks[0].Status != "fail" ||
		got.Checks[0].Fix != "run as root" || got.Checks[1].Values["n"] != float64(2) {
		t.Errorf("JSON report decoded to %+v from\n%s", got, out.String())
	}
	if strings.Contains(out.String(), `"fix": ""`) || strings.Contains(out.String(), `"values": null`) {
		t.Errorf("empty fields not omitted:\n%s", out.String())
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckYAMA(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string // "" for no file
		status  checkStatus
		want    string
	}{
		{"", statusOK, "no YAMA"},
		{"0\n", statusOK, "ptrace_scope 0"},
		{"1\n", statusOK, "CAP_SYS_PTRACE still attaches"},
		{"2\n", statusOK, "needs CAP_SYS_PTRACE"},
		{"3\n", statusFail, "no process may attach"},
		{"7\n", statusWarn, "unknown"},
		{"many\n", statusWarn, "unexpected value"},
	} {
		path := filepath.Join(dir, "absent")
		if tc.content != "" {
			path = filepath.Join(dir, "scope-"+strings.TrimSpace(tc.content))
			writeFile(t, path, tc.content)
		}
		r := checkYAMA(path)
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.want) {
			t.Errorf("ptrace_scope %q: %+v; want %s mentioning %q", tc.content, r, tc.status, tc.want)
		}
		if r.Status == statusFail && !strings.Contains(r.Fix, "kernel.yama.ptrace_scope") {
			t.Errorf("ptrace_scope %q fails without saying what to change: %+v", tc.content, r)
		}
	}
}

func TestCheckCapSysPtrace(t *testing.T) {
	dir := t.TempDir()
	status := "Name:\tx\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t%s\nCapBnd:\t000001ffffffffff\n"
	for _, tc := range []struct {
		capEff string // "" for no CapEff line
		status checkStatus
	}{
		{"000001ffffffffff", statusOK},
		{"0000000000080000", statusOK}, // CAP_SYS_PTRACE (19) alone
		{"000001fffff7ffff", statusFail},
		{"0000000000000000", statusFail},
		{"", statusFail},
	} {
		text := strings.Replace(status, "CapEff:\t%s\n", "", 1)
		if tc.capEff != "" {
			text = strings.Replace(status, "%s", tc.capEff, 1)
		}
		path := filepath.Join(dir, "status-"+tc.capEff)
		writeFile(t, path, text)
		r := checkCapSysPtrace(path)
		if r.Status != tc.status {
			t.Errorf("CapEff %q: %+v; want %s", tc.capEff, r, tc.status)
		}
		if tc.capEff != "" && r.Status == statusFail && (!strings.Contains(r.Detail, "CAP_SYS_PTRACE") || !strings.Contains(r.Fix, "root")) {
			t.Errorf("CapEff %q: failure does not name CAP_SYS_PTRACE and the fix: %+v", tc.capEff, r)
		}
	}
	if r := checkCapSysPtrace(filepath.Join(dir, "none")); r.Status != statusFail {
		t.Errorf("unreadable status file: %+v", r)
	}
}

func TestCheckKeyringNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		caps   keyring.Caps
		err    error
		status checkStatus
	}{
		{"5.3+", keyring.Caps{0xeb, 0x03}, nil, statusOK},
		{"no ns names", keyring.Caps{0xff, 0x00}, nil, statusWarn},
		{"short table", keyring.Caps{0xff}, nil, statusWarn},
		{"old kernel", nil, os.NewSyscallError("keyctl(KEYCTL_CAPABILITIES)", unix.EOPNOTSUPP), statusWarn},
		{"old kernel EINVAL", nil, os.NewSyscallError("keyctl(KEYCTL_CAPABILITIES)", unix.EINVAL), statusWarn},
		{"filtered", nil, os.NewSyscallError("keyctl(KEYCTL_CAPABILITIES)", unix.EPERM), statusWarn},
		{"no keys", nil, os.NewSyscallError("keyctl(KEYCTL_CAPABILITIES)", unix.ENOSYS), statusFail},
	} {
		r := checkKeyringNames(func() (keyring.Caps, error) { return tc.caps, tc.err })
		if r.Status != tc.status {
			t.Errorf("%s: %+v; want %s", tc.name, r, tc.status)
		}
		if r.Status != statusOK && r.Fix == "" {
			t.Errorf("%s: %s without a fix: %+v", tc.name, r.Status, r)
		}
	}
	if r := checkKeyringNames(keyring.Capabilities); r.Status != statusOK {
		t.Errorf("this kernel: %+v", r)
	}
}

func TestCheckKeyrings(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "keys"), "")
	if r := checkKeyrings(proc); r.Status != statusFail || !strings.Contains(r.Detail, "key-users") || !strings.Contains(r.Fix, "CONFIG_KEYS") {
		t.Errorf("without key-users: %+v", r)
	}
	writeFile(t, filepath.Join(proc, "key-users"), "")
	if r := checkKeyrings(proc); r.Status != statusOK {
		t.Errorf("with both files: %+v", r)
	}
}

// fakeProc writes the files checkQuotas reads.
func fakeProc(t *testing.T, keyUsers string, maxkeys, maxbytes, rootMaxkeys, rootMaxbytes string) string {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "key-users"), keyUsers)
	for name, v := range map[string]string{"maxkeys": maxkeys, "maxbytes": maxbytes, "root_maxkeys": rootMaxkeys, "root_maxbytes": rootMaxbytes} {
		writeFile(t, filepath.Join(proc, "sys/kernel/keys", name), v+"\n")
	}
	return proc
}

func TestCheckQuotas(t *testing.T) {
	type want struct{ root, userns, full checkStatus }
	for _, tc := range []struct {
		name     string
		keyUsers string
		maxkeys  string
		want     want
		mention  string
	}{
		{"healthy", "    0:    91 90/90 37/1000000 1102/25000000\n 1000:     5 4/4 4/200 98/20000\n", "200",
			want{statusOK, statusOK, statusOK}, "room for"},
		{"root has no line yet", " 1000:     5 4/4 4/200 98/20000\n", "200",
			want{statusOK, statusOK, statusOK}, "0/1000000 keys"},
		{"root keys exhausted", "    0: 1000001 1000000/1000000 1000000/1000000 9000000/25000000\n", "200",
			want{statusFail, statusOK, statusOK}, "exhausted"},
		{"root bytes exhausted", "    0:    91 90/90 37/1000000 24999900/25000000\n", "200",
			want{statusFail, statusOK, statusOK}, "exhausted"},
		{"root nearly full", "    0:  950001 950000/950000 950000/1000000 9500000/25000000\n", "200",
			want{statusWarn, statusOK, statusOK}, "950000/1000000"},
		{"userns owner full", "    0:    91 90/90 37/1000000 1102/25000000\n 1000:     5 4/4 4/200 98/20000\n100000:   201 200/200 200/200 14070/20000\n", "200",
			want{statusOK, statusOK, statusWarn}, "uid 100000: 200/200 keys"},
		{"tiny limit", "    0:    91 90/90 37/1000000 1102/25000000\n", "1",
			want{statusOK, statusWarn, statusOK}, "maxkeys 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := checkQuotas(fakeProc(t, tc.keyUsers, tc.maxkeys, "20000", "1000000", "25000000"))
			if len(rs) != 3 {
				t.Fatalf("checkQuotas = %+v; want 3 results", rs)
			}
			got := want{rs[0].Status, rs[1].Status, rs[2].Status}
			if got != tc.want {
				t.Errorf("statuses %+v, want %+v: %+v", got, tc.want, rs)
			}
			all := rs[0].Detail + rs[1].Detail + rs[2].Detail
			if !strings.Contains(all, tc.mention) {
				t.Errorf("details do not mention %q: %+v", tc.mention, rs)
			}
			if strings.Contains(rs[2].Detail, "uid 1000:") {
				t.Errorf("uid 1000 at 2%% reported as nearly full: %+v", rs[2])
			}
			for _, r := range rs {
				if r.Status != statusOK && !strings.Contains(r.Fix, "kernel.keys.") {
					t.Errorf("%s without the sysctl to change: %+v", r.Status, r)
				}
			}
		})
	}
	if rs := checkQuotas(t.TempDir()); len(rs) != 1 || rs[0].Status != statusFail {
		t.Errorf("no proc files: %+v", rs)
	}
}

// Scripts standing in for runtimes on a private PATH.
func TestRuntimeChecks(t *testing.T) {
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "runc"), "#!/bin/sh\necho 'runc version 9.9.9'\necho 'commit: abc'\n")
	writeFile(t, filepath.Join(bin, "youki"), "#!/bin/sh\necho\necho 'youki version 0.1.0'\n")
	writeFile(t, filepath.Join(bin, "crun"), "#!/bin/sh\necho 'crun: broken' >&2\nexit 3\n")
	writeFile(t, filepath.Join(bin, "conmon"), "#!/bin/sh\nexec sleep 30\n")
	writeFile(t, filepath.Join(bin, "crio"), "#!/bin/sh\necho 'not executable'\n")
	for _, name := range []string{"runc", "youki", "crun", "conmon"} {
		os.Chmod(filepath.Join(bin, name), 0o755)
	}
	start := time.Now()
	rs := runtimeChecks(strings.Join([]string{"", "relative", filepath.Join(bin, "none"), bin}, string(filepath.ListSeparator)), 300*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("runtimeChecks took %v with a 300ms bound per runtime", d)
	}
	got := map[string]checkResult{}
	for _, r := range rs {
		got[r.Check] = r
	}
	for _, tc := range []struct {
		name   string
		status checkStatus
		want   string
	}{
		{"runc", statusOK, "runc version 9.9.9"},
		{"youki", statusWarn, "youki version 0.1.0"},
		{"crun", statusWarn, "crun: broken"},
		{"conmon", statusWarn, "no answer within 300ms"},
		{"crio", statusInfo, "not found"},
		{"podman", statusInfo, "not found"},
		{"containerd", statusInfo, "not found"},
	} {
		r := got["runtime "+tc.name]
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.want) {
			t.Errorf("%s: %+v; want %s mentioning %q", tc.name, r, tc.status, tc.want)
		}
	}
	if !strings.Contains(got["runtime youki"].Fix, "keyring") {
		t.Errorf("youki's warning does not say why: %+v", got["runtime youki"])
	}
	if len(rs) != len(runtimeNames) {
		t.Errorf("%d results for %d runtimes", len(rs), len(runtimeNames))
	}
}

func TestCheckUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "extra"}, "check takes no arguments"},
		{[]string{"check", "--bogus"}, "not defined"},
		{[]string{"--perm", "0x3f1b0000", "check"}, "--perm"},
		{[]string{"--timeout", "0s", "check"}, "--timeout"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, strings.NewReader(""), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want exit %d mentioning %q", tc.args, code, stdout.String(), stderr.String(), exitUsage, tc.want)
		}
	}
}
