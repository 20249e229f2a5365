// Command bench measures what oci-keyring-hook adds to a container start
// and prints the table of docs/benchmarks.md. hack/bench.sh (make bench)
// builds what it needs and runs it; run it by hand only as root:
//
//	bench -hook BIN -floor BIN [-inject FILE] [-runs N] [-container-runs N]
//
// It measures, in alternation so that drift and noise hit every variant
// alike:
//
//   - the hook process from stdin to exit against a stand-in container init
//     (a multithreaded Go process with its main thread locked in read(2), as
//     runc init's is), next to the floor: a static Go binary that does
//     nothing but two keyctl calls;
//   - a whole `runc run` of a container whose program is that static binary:
//     runc --no-new-keyring with the hook, the same with a no-op /bin/true
//     hook (what any hook costs), and runc's own keyring without a hook.
//
// With -inject it also puts the results of `go test -bench Inject ./keyring`
// (the install algorithm against a stand-in, per container) in the table.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const standinArg = "__okh_bench_standin"

func init() {
	// The stand-in's main goroutine stays on the main thread (tid == pid),
	// blocked in read, as runc init's does.
	if len(os.Args) > 1 && os.Args[1] == standinArg {
		runtime.LockOSThread()
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == standinArg {
		standin()
	}
	var (
		hook          = flag.String("hook", "", "the hook binary (required)")
		floor         = flag.String("floor", "", "the floor binary, hack/bench/floor, static (required)")
		inject        = flag.String("inject", "", "output of go test -bench Inject ./keyring to include")
		runs          = flag.Int("runs", 60, "runs of the hook and of the floor, each")
		containerRuns = flag.Int("container-runs", 40, "container starts per variant")
		runc          = flag.String("runc", "runc", "runc binary")
		noop          = flag.String("noop", "/bin/true", "the no-op hook")
		stage         = flag.String("stage", "createRuntime", "hook stage: prestart or createRuntime")
		compare       = flag.String("compare", "", "comma-separated other hook binaries to time beside -hook (for A/B work)")
	)
	flag.Parse()
	if *hook == "" || *floor == "" {
		fmt.Fprintln(os.Stderr, "bench: -hook and -floor are required")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root (the hook ptraces its target; runc needs root)")
		os.Exit(1)
	}
	b := &bench{hook: abs(*hook), floor: abs(*floor), runc: *runc, noop: *noop, stage: *stage}
	for _, c := range strings.Split(*compare, ",") {
		if c != "" {
			b.compare = append(b.compare, abs(c))
		}
	}
	if err := b.run(*inject, *runs, *containerRuns); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

type bench struct {
	hook, floor, runc, noop, stage string
	compare                        []string
	work                           string
	out                            strings.Builder
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(&b.out, format, args...) }

func (b *bench) run(injectFile string, runs, containerRuns int) error {
	var err error
	b.work, err = os.MkdirTemp("", "okh-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.work)
	if err := os.Chmod(b.work, 0o755); err != nil {
		return err
	}
	if err := b.makeRootfs(); err != nil {
		return err
	}

	b.printf("%s\n\n", machine())
	if injectFile != "" {
		if err := b.injectTable(injectFile); err != nil {
			return err
		}
	}
	if runs > 0 {
		if err := b.processTable(runs); err != nil {
			return err
		}
	}
	if containerRuns > 0 {
		if err := b.containerTable(containerRuns); err != nil {
			return err
		}
	}
	b.printf("load average after the run: %s\n", loadavg())
	fmt.Print(b.out.String())
	return nil
}

// ---------------------------------------------------------------------------
// The install algorithm (go test -bench Inject ./keyring)

func (b *bench) injectTable(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	type row struct{ vals map[string][]float64 }
	rows := map[string]*row{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "BenchmarkInject/") {
			continue
		}
		name := strings.TrimPrefix(f[0], "BenchmarkInject/")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		r := rows[name]
		if r == nil {
			r = &row{vals: map[string][]float64{}}
			rows[name] = r
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				r.vals[f[i+1]] = append(r.vals[f[i+1]], v)
			}
		}
	}
	if len(order) == 0 {
		return fmt.Errorf("no BenchmarkInject results in %s", file)
	}
	b.printf("Install algorithm in a stand-in init, per container (go test -bench Inject ./keyring; median of %d runs)\n\n", len(rows[order[0]].vals["ns/op"]))
	b.printf("| stand-in / mode | total µs/op | attach+stop µs | remote calls µs | restore+detach µs | B/op | allocs/op |\n")
	b.printf("|---|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range order {
		v := rows[name].vals
		b.printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", name,
			median(v["ns/op"])/1e3, median(v["enter-µs/op"]), median(v["calls-µs/op"]), median(v["leave-µs/op"]),
			median(v["B/op"]), median(v["allocs/op"]))
	}
	b.printf("\n")
	return nil
}

// ---------------------------------------------------------------------------
// The hook process against the floor

func standin() {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(3, buf)
		if n == 0 || (err != nil && err != unix.EINTR) {
			os.Exit(0)
		}
	}
}

func (b *bench) processTable(runs int) error {
	// A stand-in init and the hook are both children of this process, as
	// runc init and the hook are both children of runc.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	sc := exec.Command(self, standinArg)
	sc.ExtraFiles = []*os.File{r}
	if err := sc.Start(); err != nil {
		return err
	}
	r.Close()
	defer func() { w.Close(); sc.Wait() }()
	pid := sc.Process.Pid

	bundle := filepath.Join(b.work, "bundle-process")
	if err := b.writeBundle(bundle, b.hookEntry(b.hook)); err != nil {
		return err
	}
	stateFile := filepath.Join(b.work, "state.json")
	errFile := filepath.Join(b.work, "hook.stderr")

	// The floor and the hook (and any -compare hooks) take turns, in an
	// order rotated every round.
	progs := []*prog{{name: "static Go binary, two keyctl calls (floor)", path: b.floor, args: []string{"floor"}}}
	for _, h := range append([]string{b.hook}, b.compare...) {
		name := "oci-keyring-hook " + b.stage
		if h != b.hook {
			name = h
		}
		progs = append(progs, &prog{name: name, path: h, args: []string{"oci-keyring-hook", b.stage}})
	}
	for i := 0; i < runs; i++ {
		state, _ := json.Marshal(map[string]any{
			"ociVersion": "1.0.2-dev", "id": fmt.Sprintf("okh-bench-%d-%d", os.Getpid(), i),
			"status": "creating", "pid": pid, "bundle": bundle,
		})
		if err := os.WriteFile(stateFile, state, 0o644); err != nil {
			return err
		}
		for k := range progs {
			p := progs[(k+i)%len(progs)]
			if err := waitBlocked(pid, unix.SYS_READ, 5*time.Second); err != nil {
				return err
			}
			d, err := timeProcess(p.path, p.args, stateFile, errFile)
			if err != nil {
				return err
			}
			p.times = append(p.times, d)
		}
	}
	floorT, hookT := progs[0].times, progs[1].times
	diffs := make([]float64, runs)
	for i := range hookT {
		diffs[i] = float64(hookT[i]-floorT[i]) / 1e3
	}
	b.printf("Hook process from stdin to exit, on a stand-in init (%d runs each, alternating; wall time of fork+exec+wait)\n\n", runs)
	b.printf("| program | median µs | p10 µs | p90 µs |\n|---|---:|---:|---:|\n")
	for _, p := range progs {
		t := durs(p.times)
		b.printf("| %s | %.0f | %.0f | %.0f |\n", p.name, us(median(t)), us(pct(t, 10)), us(pct(t, 90)))
	}
	d := median(diffs)
	b.printf("| hook − floor (median of pairwise differences) | **%.0f** | %.0f | %.0f |\n\n", d, pct(diffs, 10), pct(diffs, 90))
	b.printf("target: hook at most 1000 µs above the floor: %s\n\n", verdict(d <= 1000))
	return nil
}

type prog struct {
	name, path string
	args       []string
	times      []time.Duration
}

// timeProcess runs path with stdin from stdinFile and returns the wall time
// from fork to reaping. A failure returns the program's stderr.
func timeProcess(path string, args []string, stdinFile, errFile string) (time.Duration, error) {
	in, err := os.Open(stdinFile)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	ef, err := os.Create(errFile)
	if err != nil {
		return 0, err
	}
	defer ef.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	start := time.Now()
	p, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{in, devnull, ef}})
	if err != nil {
		return 0, err
	}
	st, err := p.Wait()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if !st.Success() {
		msg, _ := os.ReadFile(errFile)
		return 0, fmt.Errorf("%s: %v: %s", path, st, bytes.TrimSpace(msg))
	}
	return d, nil
}

// waitBlocked waits until thread pid sleeps in system call nr: after a
// detach the thread restarts its call on its own, and a hook always finds
// a container's init blocked in it.
func waitBlocked(pid, nr int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(sc))
		i := bytes.LastIndexByte(st, ')')
		if len(f) > 0 && f[0] == strconv.Itoa(nr) && i > 0 && len(st) > i+2 && st[i+2] == 'S' {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stand-in %d not blocked in syscall %d: %q", pid, nr, sc)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// ---------------------------------------------------------------------------
// Container start with runc

type variant struct {
	name         string
	bundle       string
	noNewKeyring bool
	times        []time.Duration
}

func (b *bench) containerTable(runs int) error {
	if _, err := exec.LookPath(b.runc); err != nil {
		return fmt.Errorf("%s not found: %w", b.runc, err)
	}
	vs := []*variant{
		{name: "runc --no-new-keyring + oci-keyring-hook", bundle: filepath.Join(b.work, "bundle-hook"), noNewKeyring: true},
		{name: "runc --no-new-keyring + " + b.noop + " hook", bundle: filepath.Join(b.work, "bundle-noop"), noNewKeyring: true},
		{name: "runc's own keyring, no hook", bundle: filepath.Join(b.work, "bundle-none")},
		// Not a target, a yardstick: what any hook written in Go costs.
		{name: "runc --no-new-keyring + floor (static Go binary) hook", bundle: filepath.Join(b.work, "bundle-floor"), noNewKeyring: true},
	}
	if err := b.writeBundle(vs[0].bundle, b.hookEntry(b.hook)); err != nil {
		return err
	}
	if err := b.writeBundle(vs[1].bundle, b.hookEntry(b.noop)); err != nil {
		return err
	}
	if err := b.writeBundle(vs[2].bundle, ""); err != nil {
		return err
	}
	if err := b.writeBundle(vs[3].bundle, b.hookEntry(b.floor)); err != nil {
		return err
	}
	for i, h := range b.compare {
		v := &variant{name: "runc --no-new-keyring + " + h, bundle: filepath.Join(b.work, fmt.Sprintf("bundle-compare%d", i)), noNewKeyring: true}
		if err := b.writeBundle(v.bundle, b.hookEntry(h)); err != nil {
			return err
		}
		vs = append(vs, v)
	}
	root := filepath.Join(b.work, "runc-state")
	// One untimed start of each warms the page cache.
	for round := -1; round < runs; round++ {
		for k := range vs {
			v := vs[(k+max(round, 0))%len(vs)] // rotate the order each round
			d, err := b.runContainer(root, v, round)
			if err != nil {
				return err
			}
			if round >= 0 {
				v.times = append(v.times, d)
			}
		}
	}
	ratio := func(a, c *variant) []float64 {
		r := make([]float64, runs)
		for i := range r {
			r[i] = float64(a.times[i]) / float64(c.times[i])
		}
		return r
	}
	hookVsNoop := median(ratio(vs[0], vs[1]))
	b.printf("Container start: `runc run` of a static Go binary, create to exit and delete (%d runs each, alternating; runc %s)\n\n", runs, runcVersion(b.runc))
	b.printf("| variant | median ms | p10 ms | p90 ms | median of pairwise ratios to the %s hook |\n|---|---:|---:|---:|---:|\n", b.noop)
	for _, v := range vs {
		t := durs(v.times)
		b.printf("| %s | %.2f | %.2f | %.2f | %.3f |\n", v.name, median(t)/1e6, pct(t, 10)/1e6, pct(t, 90)/1e6, median(ratio(v, vs[1])))
	}
	b.printf("\n")
	b.printf("hook vs %s hook: median of pairwise ratios **%.3f×**, of medians %.3f×; target ≤ 1.02×: %s\n",
		b.noop, hookVsNoop, median(durs(vs[0].times))/median(durs(vs[1].times)), verdict(hookVsNoop <= 1.02))
	b.printf("%s hook vs runc's own keyring without a hook (what running any hook costs): %.3f×\n",
		b.noop, median(ratio(vs[1], vs[2])))
	b.printf("floor hook (a Go program making two keyctl calls) vs %s hook (what a hook written in Go costs): %.3f×\n\n",
		b.noop, median(ratio(vs[3], vs[1])))
	return nil
}

func (b *bench) runContainer(root string, v *variant, round int) (time.Duration, error) {
	id := fmt.Sprintf("okh-bench-%d-%s-%d", os.Getpid(), filepath.Base(v.bundle), round+1)
	args := []string{"--root", root, "run"}
	if v.noNewKeyring {
		args = append(args, "--no-new-keyring")
	}
	args = append(args, "--bundle", v.bundle, id)
	cmd := exec.Command(b.runc, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		exec.Command(b.runc, "--root", root, "delete", "-f", id).Run()
		return 0, fmt.Errorf("%s %s: %v\n%s", b.runc, strings.Join(args, " "), err, out.String())
	}
	return d, nil
}

// ---------------------------------------------------------------------------
// Bundles

func (b *bench) makeRootfs() error {
	rootfs := filepath.Join(b.work, "rootfs")
	for _, d := range []string{"", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	src, err := os.Open(b.floor)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(rootfs, "floor"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// hookEntry is the "hooks" member running path at b.stage with default
// flags, as an admin would install the hook.
func (b *bench) hookEntry(path string) string {
	h, _ := json.Marshal([]map[string]any{{"path": path, "args": []string{filepath.Base(path), b.stage}, "timeout": 10}})
	return fmt.Sprintf(`{%q: %s}`, b.stage, h)
}

// writeBundle writes a config.json like `runc spec`'s, without a terminal,
// running /floor from the shared read-only rootfs, with hooks (or none).
func (b *bench) writeBundle(dir, hooks string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if hooks == "" {
		hooks = "{}"
	}
	config := fmt.Sprintf(`{
	"ociVersion": "1.0.2",
	"process": {
		"terminal": false,
		"user": {"uid": 0, "gid": 0},
		"args": ["/floor"],
		"env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": %q, "readonly": true},
	"hostname": "okh-bench",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
	],
	"hooks": %s,
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
		"maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
}
`, filepath.Join(b.work, "rootfs"), hooks)
	if !json.Valid([]byte(config)) {
		return errors.New("internal error: config.json is not valid JSON")
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644)
}

// ---------------------------------------------------------------------------
// Statistics and the machine

func durs(d []time.Duration) []float64 {
	f := make([]float64, len(d))
	for i, v := range d {
		f[i] = float64(v)
	}
	return f
}

func us(ns float64) float64 { return ns / 1e3 }

func median(v []float64) float64 { return pct(v, 50) }

// pct is the p-th percentile by linear interpolation between closest ranks.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	x := p / 100 * float64(len(s)-1)
	i := int(x)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (x-float64(i))*(s[i+1]-s[i])
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	var u unix.Utsname
	unix.Uname(&u)
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("Machine: %d × %s, Linux %s, %s; load average before the run: %s",
		runtime.NumCPU(), model, unix.ByteSliceToString(u.Release[:]), runtime.Version(), loadavg())
}

func runcVersion(runc string) string {
	out, err := exec.Command(runc, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0])
	return f[len(f)-1]
}
