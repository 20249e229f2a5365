package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// runtimeNames are the programs whose presence and version the check
// reports: OCI runtimes first, then the engines that run them.
var runtimeNames = []string{"runc", "crun", "youki", "podman", "conmon", "crio", "containerd"}

// runtimeVersionTimeout bounds each "<name> --version".
const runtimeVersionTimeout = 5 * time.Second

// runtimeChecks reports each runtime found in the directories of path
// (a $PATH value) with the first line of its --version. A runtime that is
// not installed is information, not a failure.
func runtimeChecks(path string, timeout time.Duration) []checkResult {
	var results []checkResult
	for _, name := range runtimeNames {
		r := checkResult{Check: "runtime " + name}
		p, ok := lookIn(path, name)
		if !ok {
			r.Status, r.Detail = statusInfo, "not found on PATH"
			results = append(results, r)
			continue
		}
		v, err := firstLineOf(p, timeout, "--version")
		if err != nil {
			r.Status, r.Detail = statusWarn, fmt.Sprintf("%s --version: %v", p, err)
		} else {
			r.Status, r.Detail = statusOK, fmt.Sprintf("%s: %s", p, v)
		}
		r.Values = map[string]any{"path": p, "version": v}
		if name == "youki" {
			r.Status = statusWarn
			r.Fix = "youki does no keyring work of its own (it ignores --no-new-keyring) and the hook is not tested with it; use runc or crun where containers need a private session keyring"
		}
		results = append(results, r)
	}
	return results
}

// lookIn finds an executable regular file called name in the directories
// of path. Empty entries (the current directory) are skipped on purpose.
func lookIn(path, name string) (string, bool) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// firstLineOf runs prog with args and returns the first non-empty line it
// prints, at most 120 bytes.
func firstLineOf(prog string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.WaitDelay = time.Second // a child that keeps our pipe open
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("no answer within %v", timeout)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if line := oneLineText(sc.Text()); line != "" {
			if len(line) > 120 {
				line = line[:120] + "..."
			}
			if err != nil {
				return line, fmt.Errorf("%w: %s", err, line)
			}
			return line, nil
		}
	}
	if err != nil {
		return "", err
	}
	return "", fmt.Errorf("printed nothing")
}
