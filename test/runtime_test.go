package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Hook stages the hook can be installed at.
const (
	Prestart      = "prestart"
	CreateRuntime = "createRuntime"
)

// Annotation keys the hook reads.
const (
	annoMode = "io.oci-keyring-hook.mode"
	annoName = "io.oci-keyring-hook.name"
)

// Timeouts: a container of this suite lives for milliseconds.
const (
	cmdTimeout   = 60 * time.Second
	hookTimeout  = 10 // seconds, the OCI hook timeout
	readyTimeout = 20 * time.Second
)

// ---------------------------------------------------------------------------
// Bundles

// Config describes one container's config.json.
type Config struct {
	Args        []string          // the probe's command line, e.g. {"/probe", "show"}
	HookStage   string            // "", Prestart or CreateRuntime
	HookArgs    []string          // extra hook flags, before the stage
	Annotations map[string]string // config.json annotations
	UserNS      bool              // map container 0 to host 100000 (65536 ids)
}

// userns mapping used with Config.UserNS.
const (
	usernsHostID = 100000
	usernsSize   = 65536
)

// Bundle is an OCI bundle on disk: config.json pointing at the shared rootfs,
// and the file the hook logs to.
type Bundle struct {
	Dir     string
	HookLog string
	Spec    *specs.Spec
}

// newBundle writes a bundle for cfg into a fresh temporary directory.
func newBundle(t *testing.T, cfg Config) *Bundle {
	t.Helper()
	dir := t.TempDir()
	b := &Bundle{Dir: dir, HookLog: filepath.Join(dir, "hook.log")}
	b.Spec = makeSpec(t, cfg, b.HookLog)
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// makeSpec returns what `runc spec` produces, adapted: no terminal, the
// probe as the process, no cgroup mount, no seccomp (keyctl is allowed), the
// shared read-only rootfs, and the options of cfg.
func makeSpec(t *testing.T, cfg Config, hookLog string) *specs.Spec {
	t.Helper()
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	s := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     cfg.Args,
			Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:        &specs.Root{Path: rootfsDir, Readonly: true},
		Hostname:    "okh",
		Annotations: cfg.Annotations,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
				"/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if cfg.UserNS {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: usernsHostID, Size: usernsSize}}
		s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
	}
	if cfg.HookStage != "" {
		hook := specs.Hook{
			Path:    requireHook(t),
			Args:    hookArgs(hookLog, cfg.HookArgs, cfg.HookStage),
			Timeout: ptr(hookTimeout),
		}
		s.Hooks = &specs.Hooks{}
		switch cfg.HookStage {
		case Prestart:
			s.Hooks.Prestart = []specs.Hook{hook}
		case CreateRuntime:
			s.Hooks.CreateRuntime = []specs.Hook{hook}
		default:
			t.Fatalf("unknown hook stage %q", cfg.HookStage)
		}
	}
	return s
}

// hookArgs is the hook's argv: JSON log to a file, extra flags, the stage.
func hookArgs(logFile string, extra []string, stage string) []string {
	args := []string{"oci-keyring-hook", "--log-format", "json", "--log-file", logFile}
	args = append(args, extra...)
	return append(args, stage)
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// Runtimes

// Runtime is one OCI runtime in one keyring mode.
type Runtime struct {
	Name         string // "runc" or "crun"
	NoNewKeyring bool   // run with --no-new-keyring
}

var (
	runcDefault = Runtime{Name: "runc"}
	runcNoNew   = Runtime{Name: "runc", NoNewKeyring: true}
	crunDefault = Runtime{Name: "crun"}
	crunNoNew   = Runtime{Name: "crun", NoNewKeyring: true}

	allRuntimes = []Runtime{runcNoNew, runcDefault, crunDefault, crunNoNew}
)

func (rt Runtime) String() string {
	if rt.NoNewKeyring {
		return rt.Name + "-no-new-keyring"
	}
	return rt.Name + "-default"
}

// require gates a test on root and on the runtime's programs.
func (rt Runtime) require(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresCommand(t, rt.Name)
	if rt.Name == "crun" && crunNeedsUnshare() {
		testutil.RequiresCommand(t, "unshare")
	}
}

// crunNeedsUnshare reports whether the host has a hybrid cgroup layout
// (cgroup v1 plus cgroup2 on /sys/fs/cgroup/unified), which crun 1.8 refuses
// ("cgroups in hybrid mode not supported, drop all controllers from
// cgroupv2"). Such hosts run crun in a private mount namespace without the
// cgroup2 mount.
var crunNeedsUnshare = sync.OnceValue(func() bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == "/sys/fs/cgroup/unified" {
			return true
		}
	}
	return false
})

// crunWrapper runs crun "$@" with the hybrid cgroup2 mount removed.
const crunWrapper = `umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"`

// ---------------------------------------------------------------------------
// Containers

// Container is one container of one test, with its own runtime state
// directory (--root) so tests never see each other's containers.
type Container struct {
	t      *testing.T
	RT     Runtime
	ID     string
	Bundle *Bundle
	Root   string
}

var idSeq struct {
	sync.Mutex
	n int
}

// newID returns a container id unique to this run: "okh-<hex>-<n>". It is a
// valid keyring name too (the hook's default name is the id).
func newID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	idSeq.Lock()
	idSeq.n++
	n := idSeq.n
	idSeq.Unlock()
	return fmt.Sprintf("okh-%s-%d", hex.EncodeToString(b), n)
}

// newContainer prepares a container (bundle, id, state dir) and registers its
// forced deletion for the end of the test, whatever happens.
func newContainer(t *testing.T, rt Runtime, cfg Config) *Container {
	t.Helper()
	c := &Container{t: t, RT: rt, ID: newID(), Bundle: newBundle(t, cfg), Root: t.TempDir()}
	t.Cleanup(c.delete)
	return c
}

// command returns the runtime invocation `<rt> --root R args...`.
func (c *Container) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--root", c.Root}, args...)
	var cmd *exec.Cmd
	if c.RT.Name == "crun" && crunNeedsUnshare() {
		cmd = exec.CommandContext(ctx, "unshare", append([]string{"-m", "sh", "-c", crunWrapper, "crun"}, full...)...)
	} else {
		cmd = exec.CommandContext(ctx, c.RT.Name, full...)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runArgs is `run [-d] [--no-new-keyring] --bundle B ID`.
func (c *Container) runArgs(detach bool) []string {
	args := []string{"run"}
	if detach {
		args = append(args, "-d")
	}
	if c.RT.NoNewKeyring {
		args = append(args, "--no-new-keyring")
	}
	return append(args, "--bundle", c.Bundle.Dir, c.ID)
}

// Result is what one runtime command did.
type Result struct {
	Cmd      string
	Stdout   string
	Stderr   string
	ExitCode int // -1 when it did not exit normally
	Err      error
}

func (r *Result) String() string {
	return fmt.Sprintf("`%s`: exit %d (%v)\n--- stdout:\n%s\n--- stderr:\n%s", r.Cmd, r.ExitCode, r.Err, r.Stdout, r.Stderr)
}

func execute(cmd *exec.Cmd) *Result {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	err := cmd.Run()
	r := &Result{Cmd: shellJoin(cmd.Args), Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	default:
		r.ExitCode = -1
	}
	return r
}

// shellJoin renders argv for a log, quoting what a shell would split.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$;&|<>*?()\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// Run runs the container in the foreground to its end (`run`).
func (c *Container) Run() *Result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	r := execute(c.command(ctx, c.runArgs(false)...))
	c.t.Logf("%s", r)
	return r
}

// Start starts a long-lived container (`run -d`). Its stdout and stderr go to
// files (a pipe would keep the runtime's Wait busy for the container's life);
// the returned Output reads them.
func (c *Container) Start() (*Result, *Output) {
	c.t.Helper()
	dir := c.t.TempDir()
	out := &Output{Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr")}
	so, err := os.Create(out.Stdout)
	if err != nil {
		c.t.Fatal(err)
	}
	defer so.Close()
	se, err := os.Create(out.Stderr)
	if err != nil {
		c.t.Fatal(err)
	}
	defer se.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := c.command(ctx, c.runArgs(true)...)
	cmd.Stdout, cmd.Stderr = so, se
	r := execute(cmd)
	c.t.Logf("%s\n(container output goes to %s)", r, out.Stdout)
	return r, out
}

// startContainer starts a long-lived container and returns the report its
// probe printed once ready.
func startContainer(t *testing.T, rt Runtime, cfg Config) (*Container, *Report) {
	t.Helper()
	c := newContainer(t, rt, cfg)
	r, out := c.Start()
	if r.ExitCode != 0 {
		t.Fatalf("the container did not start: %s", r)
	}
	rep := out.WaitReport(t)
	if rep.Session.Error != "" {
		t.Fatalf("the probe could not describe its session keyring: %s", rep.Session.Error)
	}
	return c, rep
}

// Exec runs a process in the running container (`exec ID args...`).
func (c *Container) Exec(args ...string) *Result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	r := execute(c.command(ctx, append([]string{"exec", c.ID}, args...)...))
	c.t.Logf("%s", r)
	return r
}

// State returns the runtime's `state ID` of the container.
func (c *Container) State(t *testing.T) specs.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	r := execute(c.command(ctx, "state", c.ID))
	var st specs.State
	if r.ExitCode != 0 {
		t.Fatalf("state: %s", r)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("state: %v\n%s", err, r)
	}
	return st
}

// delete removes the container whatever its state (`delete -f`); errors
// (e.g. a foreground container the runtime already deleted) are ignored.
func (c *Container) delete() {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_ = execute(c.command(ctx, "delete", "-f", c.ID))
}

// Output is where a detached container writes.
type Output struct{ Stdout, Stderr string }

// WaitReport waits for the first probe report the container printed.
func (o *Output) WaitReport(t *testing.T) *Report {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		b, _ := os.ReadFile(o.Stdout)
		if r, err := parseReport(string(b)); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			e, _ := os.ReadFile(o.Stderr)
			t.Fatalf("no probe report after %v\n--- stdout:\n%s\n--- stderr:\n%s", readyTimeout, b, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Probe reports (mirror of test/probe's JSON line)

// Keyring is the probe's description of one keyring.
type Keyring struct {
	Serial int    `json:"serial"`
	Type   string `json:"type"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Perm   string `json:"perm"`
	Name   string `json:"name"`
	Error  string `json:"error"`
}

func (k *Keyring) String() string {
	if k == nil {
		return "<none>"
	}
	if k.Error != "" {
		return fmt.Sprintf("serial %d: %s", k.Serial, k.Error)
	}
	return fmt.Sprintf("%s %d %q perm %s uid %d gid %d", k.Type, k.Serial, k.Name, k.Perm, k.UID, k.GID)
}

// Key is the probe's outcome of adding or searching for a user key.
type Key struct {
	Description string `json:"description"`
	Serial      int    `json:"serial"`
	Found       bool   `json:"found"`
	Readable    bool   `json:"readable"`
	Payload     string `json:"payload"`
	Error       string `json:"error"`
}

// Report is the JSON line the probe prints.
type Report struct {
	Cmd     string   `json:"cmd"`
	PID     int      `json:"pid"`
	UID     int      `json:"uid"`
	Marker  string   `json:"marker"`
	Session *Keyring `json:"session"`
	User    *Keyring `json:"user"`
	Joined  *Keyring `json:"joined"`
	Key     *Key     `json:"key"`
	Error   string   `json:"error"`
}

// parseReport finds the probe's JSON line in out.
func parseReport(out string) (*Report, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("probe line %q: %w", line, err)
		}
		if r.Session == nil {
			return nil, fmt.Errorf("probe line %q has no session keyring", line)
		}
		return &r, nil
	}
	return nil, fmt.Errorf("no probe report in %q", out)
}

// mustReport parses the probe's report from a finished command.
func mustReport(t *testing.T, r *Result) *Report {
	t.Helper()
	rep, err := parseReport(r.Stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if rep.Session.Error != "" {
		t.Fatalf("the probe could not describe its session keyring: %s", rep.Session.Error)
	}
	return rep
}

// hostKeyrings is what a process started by this test gets: the session
// (and user) keyring every runtime started here inherits, and whether the
// host secret (TestMain) is in it.
var hostKeyrings = sync.OnceValues(func() (*Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	r := execute(exec.CommandContext(ctx, probeBin, "show", "-find", hostSecretDesc))
	if r.Err != nil {
		return nil, fmt.Errorf("running the probe on the host: %s", r)
	}
	return parseReport(r.Stdout)
})

func host(t *testing.T) *Report {
	t.Helper()
	h, err := hostKeyrings()
	if err != nil {
		t.Fatal(err)
	}
	if h.Session.Error != "" {
		t.Fatalf("host session keyring: %s", h.Session.Error)
	}
	return h
}

// ---------------------------------------------------------------------------
// Hook log

// HookLog is one JSON line of the hook's log.
type HookLog struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	ID     string `json:"id"`
	PID    int    `json:"pid"`
	Stage  string `json:"stage"`
	Mode   string `json:"mode"`
	Serial int    `json:"serial"`
	Name   string `json:"name"`
	Perm   string `json:"perm"`
	Raw    string `json:"-"`
}

// hookLogs returns every line of the bundle's hook log.
func (b *Bundle) hookLogs(t *testing.T) []HookLog {
	t.Helper()
	data, err := os.ReadFile(b.HookLog)
	if err != nil {
		t.Fatalf("reading the hook log: %v", err)
	}
	var logs []HookLog
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var l HookLog
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("hook log line is not JSON: %q: %v", line, err)
		}
		l.Raw = line
		logs = append(logs, l)
	}
	return logs
}

// hookSuccess returns the log line recording the keyring installed in
// container id (the line carrying a serial).
func (b *Bundle) hookSuccess(t *testing.T, id string) HookLog {
	t.Helper()
	logs := b.hookLogs(t)
	for _, l := range logs {
		if l.ID == id && l.Serial != 0 {
			return l
		}
	}
	t.Fatalf("no hook log line with id %q and a serial in %s:\n%s", id, b.HookLog, rawLines(logs))
	return HookLog{}
}

func rawLines(logs []HookLog) string {
	var s []string
	for _, l := range logs {
		s = append(s, l.Raw)
	}
	return strings.Join(s, "\n")
}
