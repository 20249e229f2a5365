package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

var versionFormat = regexp.MustCompile(`^oci-keyring-hook (\S+) \(commit (\S+), (go\S+), (\w+)/(\w+)\)\n$`)

func TestVersionCommand(t *testing.T) {
	want := fmt.Sprintf("oci-keyring-hook %s (commit %s, %s, %s/%s)\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if !versionFormat.MatchString(want) {
		t.Fatalf("the expected line %q does not match the format", want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"--mode", "anonymous", "version"}} {
		var stdout, stderr bytes.Buffer
		code := run(args, strings.NewReader(""), &stdout, &stderr)
		if code != exitOK || stdout.String() != want || stderr.Len() != 0 {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want 0, %q on stdout", args, code, stdout.String(), stderr.String(), want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version", "extra"}, strings.NewReader(""), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "no arguments") {
		t.Errorf("version extra: exit %d, stderr %q; want a usage error", code, stderr.String())
	}
}

// versionOf runs a built binary's version command and --version.
func versionOf(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	flagOut, err := exec.Command(bin, "--version").Output()
	if err != nil || !bytes.Equal(out, flagOut) {
		t.Errorf("%s --version printed %q (%v), version printed %q", bin, flagOut, err, out)
	}
	return string(out)
}

func TestVersionFromLdflags(t *testing.T) {
	goBin := testutil.RequiresCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "oci-keyring-hook")
	build := exec.Command(goBin, "build", "-ldflags", "-X main.version=1.2.3 -X main.commit=abc", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := fmt.Sprintf("oci-keyring-hook 1.2.3 (commit abc, %s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if got := versionOf(t, bin); got != want {
		t.Errorf("version = %q, want %q", got, want)
	}
}

// make build passes VERSION and COMMIT through LDFLAGS to main.version and
// main.commit.
func TestVersionFromMakefile(t *testing.T) {
	testutil.RequiresCommand(t, "go")
	makeBin := testutil.RequiresCommand(t, "make")
	bin := filepath.Join(t.TempDir(), "oci-keyring-hook")
	cmd := exec.Command(makeBin, "-C", "..", "build", "BIN="+bin, "VERSION=4.5.6-test", "COMMIT=def0123")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	m := versionFormat.FindStringSubmatch(versionOf(t, bin))
	if m == nil || m[1] != "4.5.6-test" || m[2] != "def0123" {
		t.Errorf("make build VERSION=4.5.6-test COMMIT=def0123 gave %q", m)
	}
}
