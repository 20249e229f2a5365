package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
)

// hookBinary is the hook built once for the tests that need it as a
// separate process: a sibling of the stand-in, as under a runtime.
var hookBinary string

func TestMain(m *testing.M) {
	standin.RunIfChild()
	// A prebuilt hook, where there is no go to build one (the arm64 VM of
	// hack/test-arm64.sh).
	if p := os.Getenv("OKH_HOOK_BINARY"); p != "" {
		hookBinary = p
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "okh-hook-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hookBinary = filepath.Join(dir, "oci-keyring-hook")
	build := exec.Command("go", "build", "-o", hookBinary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the hook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, strings.NewReader(""), &out, &out); code != exitOK {
		t.Fatalf("--help exited %d", code)
	}
	var o options
	newFlagSet(&o, &out).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "--"+f.Name+" ") {
			t.Errorf("--help does not show --%s", f.Name)
		}
	})
	for _, want := range []string{"prestart", "createRuntime", "io.oci-keyring-hook.mode", "io.oci-keyring-hook.name", "Exit status", "user keyring"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "want exactly one stage argument"},
		{[]string{"poststart"}, "unknown hook stage"},
		{[]string{"prestart", "extra"}, "want exactly one stage argument"},
		{[]string{"--mode", "shared", "prestart"}, "--mode"},
		{[]string{"--perm", "0x3f1b0000", "prestart"}, "grants search to a non-possessor"},
		{[]string{"--perm", "0x3f010008", "prestart"}, "grants search to a non-possessor"},
		{[]string{"--perm", "zz", "prestart"}, "--perm"},
		{[]string{"--perm", "0x01010000", "prestart"}, "possessor"},
		{[]string{"--name", "{name}", "prestart"}, "--name"},
		{[]string{"--name", ".hidden-{id}", "prestart"}, "--name"},
		{[]string{"--timeout", "0s", "prestart"}, "--timeout"},
		{[]string{"--log-format", "xml", "prestart"}, "--log-format"},
		{[]string{"--log-level", "loud", "prestart"}, "--log-level"},
		{[]string{"--no-such-flag", "prestart"}, "not defined"},
	} {
		var out bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &out)
		if code != exitUsage || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run(%q) = %d, %q; want exit %d mentioning %q", tc.args, code, out.String(), exitUsage, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &out); code != exitOK || !strings.HasPrefix(out.String(), "oci-keyring-hook ") {
			t.Errorf("run(%q) = %d, %q", args, code, out.String())
		}
	}
}
