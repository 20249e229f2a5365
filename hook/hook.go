package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
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

// run handles one container and returns the exit status.
func (h *hook) run(stage spec.Stage, admin spec.Admin, stdin io.Reader) int {
	start := time.Now()
	deadline := start.Add(h.timeout)
	fields := logrus.Fields{"stage": string(stage)}

	st, err := readState(stdin, h.timeout)
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
	sharesUserNS, nsErr := keyring.SameUserNamespace(st.Pid)

	req := keyring.Request{Mode: keyring.Named, Name: pol.Name, Perm: keyring.Perm(pol.Perm)}
	if pol.Mode == spec.ModeAnonymous {
		req = keyring.Request{Mode: keyring.Anonymous, Perm: keyring.Perm(pol.Perm)}
	}

	cancel := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		if sig, ok := <-sigs; ok {
			fields["signal"] = sig.String()
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
		return err
	})
	fields["enter_us"] = tm.Enter.Microseconds()
	fields["install_us"] = tm.Work.Microseconds()
	fields["leave_us"] = tm.Leave.Microseconds()
	fields["total_us"] = time.Since(start).Microseconds()
	if err != nil {
		return h.fail(fields, fmt.Errorf("installing a session keyring in pid %d: %w", st.Pid, err), errors.Is(err, keyring.ErrNotRestored))
	}

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
		what = fmt.Sprintf("container %q", id)
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
// runtime that never closes stdin must not hold the container forever.
func readState(r io.Reader, timeout time.Duration) (*specs.State, error) {
	type result struct {
		st  *specs.State
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := spec.ReadState(r)
		ch <- result{st, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.st, r.err
	case <-t.C:
		return nil, fmt.Errorf("no end of input after %v (--timeout)", timeout)
	}
}
