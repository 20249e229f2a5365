package main

import (
	"fmt"
	"io"
	"runtime"
)

// versionLine is what `version` and --version print.
func versionLine() string {
	return fmt.Sprintf("oci-keyring-hook %s (commit %s, %s, %s/%s)", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// runVersion is the `version` command: it takes no arguments.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "oci-keyring-hook: version takes no arguments, got %q\nRun 'oci-keyring-hook --help' for usage.\n", args)
		return exitUsage
	}
	fmt.Fprintln(stdout, versionLine())
	return exitOK
}
