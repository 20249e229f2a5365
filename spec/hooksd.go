package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// HooksDVersion is the hooks.d schema version this package reads and the
// one the project ships (oci-hooks(5)).
const HooksDVersion = "1.0.0"

// MaxHooksDSize bounds a hooks.d file read by ReadHooksD (1 MiB).
const MaxHooksDSize = 1 << 20

// ErrInvalidHooksD means a hooks.d file breaks the 1.0.0 schema rules.
var ErrInvalidHooksD = errors.New("invalid hooks.d configuration")

// HooksD is one hooks.d file in schema 1.0.0, as read by podman, CRI-O and
// NRI's hook-injector (containers/common pkg/hooks): the hook to inject,
// the conditions under which to inject it, and the stages to inject it at.
type HooksD struct {
	Version string     `json:"version"`
	Hook    specs.Hook `json:"hook"`
	When    HooksDWhen `json:"when"`
	Stages  []string   `json:"stages"`
}

// HooksDWhen holds the injection conditions. Every condition that is set
// must match for the hook to be injected. Annotation keys and values and
// commands are regular expressions matched anywhere in the string: anchor
// them with ^ and $ to match a whole key or value.
type HooksDWhen struct {
	Always        *bool             `json:"always,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Commands      []string          `json:"commands,omitempty"`
	HasBindMounts *bool             `json:"hasBindMounts,omitempty"`
}

// hookStages are the runtime-spec hook stages. Older consumers of hooks.d
// files accept only prestart, poststart and poststop; podman runs a hooks.d
// prestart hook at createRuntime.
var hookStages = map[string]bool{
	"prestart":        true,
	"createRuntime":   true,
	"createContainer": true,
	"startContainer":  true,
	"poststart":       true,
	"poststop":        true,
}

// ReadHooksD decodes a hooks.d file from r (at most MaxHooksDSize bytes)
// and validates it. Unknown members are errors: a misspelt condition
// ("annotation", "stage") would otherwise be dropped without a word and
// change when the hook runs.
func ReadHooksD(r io.Reader) (*HooksD, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxHooksDSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading hooks.d configuration: %w", err)
	}
	if len(data) > MaxHooksDSize {
		return nil, fmt.Errorf("%w: larger than the limit of %d bytes", ErrInvalidHooksD, MaxHooksDSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var h *HooksD
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidHooksD, err)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: want a JSON object, got null", ErrInvalidHooksD)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidHooksD)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return h, nil
}

// Validate checks the rules of schema 1.0.0 that do not depend on the
// machine: the version, an absolute hook path, a positive timeout if any,
// known stages, at least one condition, and regular expressions that
// compile. Whether hook.path exists is for the consumer to check where the
// file is installed (podman and CRI-O skip a hook whose path is missing).
func (h *HooksD) Validate() error {
	var errs []error
	if h.Version != HooksDVersion {
		errs = append(errs, fmt.Errorf("version %s: want %q", quote(h.Version), HooksDVersion))
	}
	switch {
	case h.Hook.Path == "":
		errs = append(errs, errors.New("hook.path: missing"))
	case !filepath.IsAbs(h.Hook.Path):
		errs = append(errs, fmt.Errorf("hook.path %s: must be absolute", quote(h.Hook.Path)))
	}
	if h.Hook.Timeout != nil && *h.Hook.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("hook.timeout %d: must be greater than zero", *h.Hook.Timeout))
	}
	if len(h.Stages) == 0 {
		errs = append(errs, errors.New("stages: missing or empty"))
	}
	seen := map[string]bool{}
	for _, s := range h.Stages {
		switch {
		case !hookStages[s]:
			errs = append(errs, fmt.Errorf("stages: unknown stage %s", quote(s)))
		case seen[s]:
			errs = append(errs, fmt.Errorf("stages: %q listed twice", s))
		}
		seen[s] = true
	}
	if err := h.When.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidHooksD, err)
	}
	return nil
}

func (w *HooksDWhen) validate() error {
	if w.Always == nil && w.HasBindMounts == nil && len(w.Annotations) == 0 && len(w.Commands) == 0 {
		return errors.New("when: no condition (want at least one of always, annotations, commands, hasBindMounts)")
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(w.Annotations)) {
		v := w.Annotations[k]
		if _, err := regexp.Compile(k); err != nil {
			errs = append(errs, fmt.Errorf("when.annotations: key %s: %w", quote(k), err))
		}
		if _, err := regexp.Compile(v); err != nil {
			errs = append(errs, fmt.Errorf("when.annotations[%s]: value %s: %w", quote(k), quote(v), err))
		}
	}
	for _, c := range w.Commands {
		if _, err := regexp.Compile(c); err != nil {
			errs = append(errs, fmt.Errorf("when.commands: %s: %w", quote(c), err))
		}
	}
	return errors.Join(errs...)
}
