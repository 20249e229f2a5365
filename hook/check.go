package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
	"github.com/oci-keyring-hook/oci-keyring-hook/spec"
)

// The check command tells an operator, before rollout, whether the hook
// would work on this machine, and for each problem what to change.

// checkStatus is the verdict of one check. Only statusFail makes the
// command exit non-zero.
type checkStatus string

const (
	statusOK   checkStatus = "ok"
	statusInfo checkStatus = "info" // nothing to judge, e.g. a runtime that is not installed
	statusWarn checkStatus = "warn" // the hook works, with a caveat
	statusFail checkStatus = "fail" // the hook would fail here
)

// checkResult is one line of the report.
type checkResult struct {
	Check  string         `json:"check"`
	Status checkStatus    `json:"status"`
	Detail string         `json:"detail"`
	Fix    string         `json:"fix,omitempty"` // what to change, for warn and fail
	Values map[string]any `json:"values,omitempty"`
}

// checkReport is the whole answer; --json prints it as is.
type checkReport struct {
	OK     bool          `json:"ok"` // no check failed
	Checks []checkResult `json:"checks"`
}

func newReport(results []checkResult) checkReport {
	r := checkReport{OK: true, Checks: results}
	for _, c := range results {
		if c.Status == statusFail {
			r.OK = false
		}
	}
	return r
}

func (r checkReport) count(s checkStatus) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

func (r checkReport) exitCode() int {
	if r.OK {
		return exitOK
	}
	return exitFailure
}

// writeTable prints the report as aligned columns, a failed or warned
// line's fix after its detail, then a one-line verdict.
func (r checkReport) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range r.Checks {
		detail := c.Detail
		if c.Fix != "" {
			detail += "; fix: " + c.Fix
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Check, c.Status, oneLineText(detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "the hook would work here"
	if !r.OK {
		verdict = fmt.Sprintf("the hook would NOT work here: %d check(s) failed", r.count(statusFail))
	}
	if n := r.count(statusWarn); n > 0 {
		verdict += fmt.Sprintf(" (%d warning(s))", n)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", verdict)
	return err
}

func (r checkReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// oneLineText keeps a value on its table row.
func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

type checkOptions struct {
	json bool
}

func newCheckFlagSet(c *checkOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("oci-keyring-hook check", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: oci-keyring-hook [flags] check [--json]\n\nChecks that the hook would work on this machine; see 'oci-keyring-hook --help'.\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// selfTestBound bounds the whole self-test, on top of --timeout for the
// injection itself: starting the stand-in, its report and its exit.
const selfTestBound = 10 * time.Second

// runCheck is the check command. The hook's own flags, given before the
// word check, choose the mode, permissions and timeout of the self-test.
func runCheck(o options, args []string, stdout, stderr io.Writer) int {
	var c checkOptions
	fs := newCheckFlagSet(&c, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oci-keyring-hook: check takes no arguments, got %q\nRun 'oci-keyring-hook --help' for usage.\n", fs.Args())
		return exitUsage
	}
	admin, err := o.admin()
	if err != nil {
		fmt.Fprintf(stderr, "oci-keyring-hook: %v\nRun 'oci-keyring-hook --help' for usage.\n", err)
		return exitUsage
	}

	results := hostChecks("/proc")
	results = append(results, runtimeChecks(os.Getenv("PATH"), runtimeVersionTimeout)...)
	st := selfTest{
		cmd:     standinCommand(),
		mode:    keyring.Named,
		perm:    keyring.Perm(admin.Perm),
		timeout: o.timeout,
		bound:   o.timeout + selfTestBound,
	}
	if admin.Mode == spec.ModeAnonymous {
		st.mode = keyring.Anonymous
	}
	results = append(results, st.check())

	r := newReport(results)
	write := r.writeTable
	if c.json {
		write = r.writeJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "oci-keyring-hook: writing the report: %v\n", err)
		return exitFailure
	}
	return r.exitCode()
}
