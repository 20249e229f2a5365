package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
	"github.com/oci-keyring-hook/oci-keyring-hook/spec"
)

type hook struct {
	log      *logrus.Logger
	stderr   io.Writer
	toStderr bool // the log already goes to stderr
	closeLog func()
	failOpen bool
	timeout  time.Duration
}

func newHook(o options, stderr io.Writer) (*hook, error) {
	log := logrus.New()
	toStderr, closeLog, err := setupLogging(log, o.logFile, o.logLevel, o.logFormat)
	if err != nil {
		return nil, err
	}
	if toStderr {
		log.SetOutput(stderr)
	}
	return &hook{log: log, stderr: stderr, toStderr: toStderr, closeLog: closeLog, failOpen: o.failOpen, timeout: o.timeout}, nil
}

func (h *hook) close() { h.closeLog() }

// exitAfterRun is set by main: the process exits as soon as the hook has
// run, so there is nothing to undo. signal.Stop, for one, costs a round
// trip to the Go runtime's signal thread while the runtime waits for the
// hook to exit.
var exitAfterRun bool

// run handles one container and returns the exit status.
func (h *hook) run(stage spec.Stage, admin spec.Admin, stdin io.Reader) int {
	start := time.Now()
	deadline := start.Add(h.timeout)
	fields := logrus.Fields{"stage": string(stage)}

	// SIGTERM and SIGINT must be caught before the target is entered, so
	// that they restore it rather than kill the hook. os/signal starts a
	// thread of its own for that, which costs as much as everything else
	// before the injection: let it happen while the state is read.
	sigs := make(chan os.Signal, 1)
	notified := make(chan struct{})
	go func() {
		signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
		close(notified)
	}()
	defer func() {
		if !exitAfterRun {
			<-notified
			signal.Stop(sigs)
		}
	}()

	st, err := readState(stdin, h.timeout, func(err error) {
		os.Exit(h.fail(fields, fmt.Errorf("reading the container state from stdin: %w", err), false))
	})
	if err != nil {
		return h.fail(fields, fmt.Errorf("reading the container state from stdin: %w", err), false)
	}
	fields["id"], fields["pid"] = st.ID, st.Pid

	var annotations map[string]string
	if admin.AllowAnnotations {
		if annotations, err = spec.Annotations(st); err != nil {
			return h.fail(fields, err, false)
		}
	}
	pol, err := spec.Decide(admin, st.ID, annotations)
	if err != nil {
		return h.fail(fields, err, false)
	}
	fields["mode"] = string(pol.Mode)
	if pol.Source != "flags" {
		fields["chosen_by"] = pol.Source
	}
	if err := keyring.CheckTarget(st.Pid); err != nil {
		return h.fail(fields, err, false)
	}
	// Only the log line needs this: find it out while the target is held.
	type userNS struct {
		same bool
		err  error
	}
	nsc := make(chan userNS, 1)
	go func() {
		same, err := keyring.SameUserNamespace(st.Pid)
		nsc <- userNS{same, err}
	}()

	req := keyring.Request{Mode: keyring.Named, Name: pol.Name, Perm: keyring.Perm(pol.Perm)}
	if pol.Mode == spec.ModeAnonymous {
		req.Mode = keyring.Anonymous
	}

	// The signal is handed over through cancel's closing: fields belongs
	// to this goroutine.
	cancel := make(chan struct{})
	var caught os.Signal
	<-notified
	go func() {
		if sig, ok := <-sigs; ok {
			caught = sig
			close(cancel)
		}
	}()

	var res keyring.Result
	tm, err := keyring.Inject(st.Pid, keyring.Options{
		Timeout: time.Until(deadline),
		Cancel:  cancel,
		Verify:  func() error { return keyring.CheckTarget(st.Pid) },
	}, func(s keyring.Syscaller) error {
		var err error
		res, err = keyring.Install(s, req)
		// While the target is held: which uid's key quota ran out, and
		// how much of it is in use.
		keyring.ExplainQuota(err, st.Pid)
		return err
	})
	select {
	case <-cancel:
		fields["signal"] = caught.String()
	default:
	}
	fields["enter_us"] = tm.Enter.Microseconds()
	fields["install_us"] = tm.Work.Microseconds()
	fields["leave_us"] = tm.Leave.Microseconds()
	fields["total_us"] = time.Since(start).Microseconds()
	if err != nil {
		return h.fail(fields, fmt.Errorf("installing a session keyring in pid %d: %w", st.Pid, err), errors.Is(err, keyring.ErrNotRestored))
	}

	ns := <-nsc
	sharesUserNS, nsErr := ns.same, ns.err
	fields["serial"] = res.Serial
	fields["name"] = res.Desc.Name
	fields["perm"] = res.Desc.Perm.String()
	entry := h.log.WithFields(fields)
	switch {
	case nsErr != nil:
		entry.WithField("user_keyring", "unknown: "+nsErr.Error()).Info("installed private session keyring")
	case sharesUserNS:
		entry.WithField("user_keyring", "host's").Warn("installed private session keyring; the container has no user namespace, so its user keyring (@u) is still the host's")
	default:
		entry.Info("installed private session keyring")
	}
	return exitOK
}

// fail logs err and returns the exit status: non-zero unless --fail-open,
// and always non-zero when the target could not be restored.
func (h *hook) fail(fields logrus.Fields, err error, damaged bool) int {
	entry := h.log.WithFields(fields).WithError(err)
	id, _ := fields["id"].(string)
	what := "container"
	if id != "" {
		// Cut like every other value the errors quote: a hostile id must
		// not make the one line the runtime shows megabytes long.
		if len(id) > 80 {
			what = fmt.Sprintf("container %q...", id[:80])
		} else {
			what = fmt.Sprintf("container %q", id)
		}
	}
	if h.failOpen && !damaged {
		entry.Warn("no private session keyring (--fail-open: container allowed to start)")
		if !h.toStderr {
			fmt.Fprintf(h.stderr, "oci-keyring-hook: %s starts without a private session keyring (--fail-open): %s\n", what, oneLine(err))
		}
		return exitOK
	}
	entry.Error("no private session keyring; the container must not start")
	if !h.toStderr {
		fmt.Fprintf(h.stderr, "oci-keyring-hook: %s: %s\n", what, oneLine(err))
	}
	return exitFailure
}

// readState reads the state with a bound on time as well as size: a
// runtime that never closes stdin must not hold the container forever. It
// reads on the calling goroutine (a second one would cost a thread wake-up
// on every run); should the bound pass first, expired runs instead, and
// exits the process: nothing has been entered yet.
func readState(r io.Reader, timeout time.Duration, expired func(error)) (*specs.State, error) {
	var state atomic.Int32 // 0 reading, 1 read, 2 timed out
	t := time.AfterFunc(timeout, func() {
		if state.CompareAndSwap(0, 2) {
			expired(fmt.Errorf("no end of input after %v (--timeout)", timeout))
		}
	})
	st, err := spec.ReadState(r)
	if !state.CompareAndSwap(0, 1) {
		select {} // expired is exiting the process
	}
	t.Stop()
	return st, err
}
