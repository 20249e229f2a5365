package spec

import (
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// MaxStateSize bounds the state JSON read from stdin (1 MiB).
const MaxStateSize = 1 << 20

// pidMaxLimit is the kernel's PID_MAX_LIMIT on 64-bit: pid_max cannot be set
// higher, and every pid is below pid_max.
const pidMaxLimit = 1 << 22

// ErrInvalidState means the state on stdin is not one the hook acts on.
var ErrInvalidState = errors.New("invalid container state")

// ociState mirrors specs.State with a pointer pid, so that an absent pid can
// be told apart from zero.
type ociState struct {
	Version     string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         *int              `json:"pid"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations"`
}

// ReadState reads and validates the OCI state from r, reading at most
// MaxStateSize bytes. It accepts what runc, crun, podman and CRI-O send to
// prestart and createRuntime hooks; unknown members (such as crun's "root")
// are ignored.
func ReadState(r io.Reader) (*specs.State, error) {
	// Read one byte past the limit so that an oversized state is an error
	// rather than a truncated parse.
	data, err := io.ReadAll(io.LimitReader(r, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("%w: larger than the limit of %d bytes", ErrInvalidState, MaxStateSize)
	}
	var raw ociState
	if err := decodeObject(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if err := raw.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	return &specs.State{
		Version:     raw.Version,
		ID:          raw.ID,
		Status:      specs.ContainerState(raw.Status),
		Pid:         *raw.Pid,
		Bundle:      raw.Bundle,
		Annotations: raw.Annotations,
	}, nil
}

func (s *ociState) validate() error {
	if s.ID == "" {
		return errors.New("missing or empty id")
	}
	switch {
	case s.Pid == nil:
		return errors.New("missing pid")
	case *s.Pid <= 1:
		// 0 and negative pids would address process groups, 1 is init.
		return fmt.Errorf("pid %d is not a container process (want > 1)", *s.Pid)
	case *s.Pid >= pidMaxLimit:
		return fmt.Errorf("pid %d is out of range (PID_MAX_LIMIT is %d)", *s.Pid, pidMaxLimit)
	}
	// Runtimes report "creating" (runc) or "created" (crun) before the
	// container's process calls execve; anything later is too late to act.
	switch specs.ContainerState(s.Status) {
	case specs.StateCreating, specs.StateCreated:
		return nil
	}
	return fmt.Errorf("status %s: want %q or %q (is the hook registered for the prestart or createRuntime stage?)",
		quote(s.Status), specs.StateCreating, specs.StateCreated)
}
