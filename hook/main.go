// Command oci-keyring-hook is an OCI runtime hook that gives every
// container a fresh, private session keyring before its program starts.
package main

import (
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

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the container must not start
	exitUsage   = 2
)

const usageHead = `Usage: oci-keyring-hook [flags] prestart|createRuntime
       oci-keyring-hook [flags] check [--json]
       oci-keyring-hook version

oci-keyring-hook is an OCI runtime hook. The runtime (runc, crun, podman,
CRI-O) runs it after creating a container and before the container's
program starts, with the container's state JSON on stdin. The hook enters
the container's first process with ptrace, makes it join a new session
keyring that no other process can join by name, restores the process
exactly as it was and detaches. Keys in the host's session keyring (or in
another container's) are then out of the container's reach.

Configure it as a prestart or createRuntime hook; the last argument names
the stage. It fails closed: if the container cannot be given a private
keyring, the hook exits non-zero and the runtime does not start it.

Commands:
  prestart, createRuntime  run as the hook: the state on stdin, the stage as
                           the last argument
  check [--json]           before rollout: check the kernel's keyrings,
                           ptrace permissions, key quotas and the runtimes on
                           PATH, and install a keyring in a stand-in init as
                           the hook would (with the flags given); a failed
                           line says what to change. --json prints JSON.
  version                  print version, commit, Go version and platform
                           (also --version)

Flags:
`

const usageTail = `
Annotations (honoured unless --no-annotations; read from the state, or
from the bundle's config.json when the state carries none):
  io.oci-keyring-hook.mode=named|anonymous
      anonymous installs a keyring the kernel names "_ses".
  io.oci-keyring-hook.name=NAME
      a literal keyring name (implies named).
  Names are 1 to 255 bytes of [A-Za-z0-9._:+-] and must not start with '.'.
  An invalid annotation stops the container.

Logging: one line per container. To --log-file if given, else to syslog
(/dev/log), else to stderr. Failures are also written to stderr, which the
runtime includes in its error.

Exit status:
  0  installed (or failed with --fail-open); check: the hook would work here
  1  failed, the container must not start; check: a check failed
  2  usage error

Caveats: without a user namespace the container's user keyring (@u) is
still the host's; processes added later with "runc exec" do not go
through this hook. See the README.

Examples:
  config.json (runc):  "hooks": {"createRuntime": [{"path": "/usr/libexec/oci/hooks.d/oci-keyring-hook",
                         "args": ["oci-keyring-hook", "createRuntime"]}]}
  test by hand:        oci-keyring-hook --log-file /dev/stderr prestart < state.json
  before rollout:      oci-keyring-hook check
`

type options struct {
	mode          string
	name          string
	perm          string
	noAnnotations bool
	failOpen      bool
	timeout       time.Duration
	logFile       string
	logLevel      string
	logFormat     string
	showVersion   bool
}

func newFlagSet(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("oci-keyring-hook", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", string(spec.ModeNamed), "`mode`: named or anonymous; join a fresh keyring named by --name, or install an anonymous one")
	fs.StringVar(&o.name, "name", spec.DefaultNameTemplate, "keyring name `template` in named mode; {id} is the container id")
	fs.StringVar(&o.perm, "perm", keyring.DefaultPerm.String(), "permission `mask` set on the keyring (hex); may not grant search to a non-possessor")
	fs.BoolVar(&o.noAnnotations, "no-annotations", false, "ignore io.oci-keyring-hook.* annotations: flags alone decide")
	fs.BoolVar(&o.failOpen, "fail-open", false, "on failure log and exit 0, leaving the container as the runtime made it")
	fs.DurationVar(&o.timeout, "timeout", keyring.DefaultTimeout, "bound on the whole run, from reading the state to detaching")
	fs.StringVar(&o.logFile, "log-file", "", "append log lines to this `file` instead of syslog")
	fs.StringVar(&o.logLevel, "log-level", "info", "`level`: error, warn, info or debug")
	fs.StringVar(&o.logFormat, "log-format", "text", "`format`: text or json")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			def := ""
			if f.DefValue != "" && f.DefValue != "false" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s %s\t%s%s\n", f.Name, name, usage, def)
		})
		w.Flush()
		fmt.Fprint(out, usageTail)
	}
	return fs
}

func main() {
	exitAfterRun = true
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Commands other than the stage words.
const (
	cmdCheck   = "check"
	cmdVersion = "version"
)

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case o.showVersion:
		return runVersion(nil, stdout, stderr)
	case fs.Arg(0) == cmdVersion:
		return runVersion(fs.Args()[1:], stdout, stderr)
	case fs.Arg(0) == cmdCheck:
		return runCheck(o, fs.Args()[1:], stdout, stderr)
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "oci-keyring-hook: want exactly one stage argument (prestart or createRuntime), got %d: %q\nRun 'oci-keyring-hook --help' for usage.\n", fs.NArg(), fs.Args())
		return exitUsage
	}
	stage, err := spec.ParseStage(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "oci-keyring-hook: %v\nRun 'oci-keyring-hook --help' for usage.\n", err)
		return exitUsage
	}
	admin, err := o.admin()
	if err != nil {
		fmt.Fprintf(stderr, "oci-keyring-hook: %v\nRun 'oci-keyring-hook --help' for usage.\n", err)
		return exitUsage
	}
	h, err := newHook(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "oci-keyring-hook: %v\n", err)
		return exitUsage
	}
	defer h.close()
	return h.run(stage, admin, stdin)
}

// admin validates the flags that decide the policy.
func (o options) admin() (spec.Admin, error) {
	mode, err := spec.ParseMode(o.mode)
	if err != nil {
		return spec.Admin{}, fmt.Errorf("--mode: %w", err)
	}
	perm, err := keyring.ParsePerm(o.perm)
	if err != nil {
		return spec.Admin{}, fmt.Errorf("--perm: %w", err)
	}
	if err := keyring.ValidateSessionPerm(perm); err != nil {
		return spec.Admin{}, fmt.Errorf("--perm: %w", err)
	}
	if mode == spec.ModeNamed {
		if err := spec.ValidateTemplate(o.name); err != nil {
			return spec.Admin{}, fmt.Errorf("--name: %w", err)
		}
	}
	if o.timeout <= 0 {
		return spec.Admin{}, fmt.Errorf("--timeout %v: must be positive", o.timeout)
	}
	return spec.Admin{Mode: mode, NameTemplate: o.name, Perm: uint32(perm), AllowAnnotations: !o.noAnnotations}, nil
}

// oneLine keeps a multi-line error on the single line runtimes show.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
