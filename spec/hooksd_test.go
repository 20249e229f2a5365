package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// templateHookDir stands in for @HOOKDIR@ in the committed templates, as
// `make install PREFIX=/usr` substitutes it.
const templateHookDir = "/usr/libexec/oci/hooks.d"

// readTemplate reads hack/hooks.d/<name> and substitutes @HOOKDIR@.
func readTemplate(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "hack", "hooks.d", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "@HOOKDIR@", templateHookDir)
	if strings.Contains(s, "@") {
		t.Fatalf("%s: placeholder left after substituting @HOOKDIR@:\n%s", name, s)
	}
	return s
}

func TestHooksDTemplates(t *testing.T) {
	always, optin := true, map[string]string{`^io\.oci-keyring-hook\.mode$`: `^.*$`}
	tests := []struct {
		file string
		when HooksDWhen
	}{
		{"oci-keyring-hook.json.in", HooksDWhen{Always: &always}},
		{"oci-keyring-hook-optin.json.in", HooksDWhen{Annotations: optin}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			h, err := ReadHooksD(strings.NewReader(readTemplate(t, tc.file)))
			if err != nil {
				t.Fatalf("ReadHooksD: %v", err)
			}
			if h.Version != "1.0.0" {
				t.Errorf("version = %q", h.Version)
			}
			if want := templateHookDir + "/oci-keyring-hook"; h.Hook.Path != want {
				t.Errorf("hook.path = %q, want %q", h.Hook.Path, want)
			}
			// The hook's usage: argv[0], then the stage word last.
			if want := []string{"oci-keyring-hook", "prestart"}; !reflect.DeepEqual(h.Hook.Args, want) {
				t.Errorf("hook.args = %q, want %q", h.Hook.Args, want)
			}
			if _, err := ParseStage(h.Hook.Args[len(h.Hook.Args)-1]); err != nil {
				t.Errorf("the hook would refuse its stage argument: %v", err)
			}
			if h.Hook.Timeout == nil || *h.Hook.Timeout != 5 {
				t.Errorf("hook.timeout = %v, want 5", h.Hook.Timeout)
			}
			// prestart, not createRuntime: every hooks.d reader accepts
			// it, and podman runs it at createRuntime.
			if want := []string{"prestart"}; !reflect.DeepEqual(h.Stages, want) {
				t.Errorf("stages = %q, want %q", h.Stages, want)
			}
			if !reflect.DeepEqual(h.When, tc.when) {
				t.Errorf("when = %+v, want %+v", h.When, tc.when)
			}
		})
	}
}

// The opt-in file's regular expressions are matched anywhere in a string
// (containers/common uses regexp.MatchString): they must be anchored, and
// only the mode annotation with a valid mode opts a container in.
func TestHooksDOptInMatchesEveryModeAnnotation(t *testing.T) {
	h, err := ReadHooksD(strings.NewReader(readTemplate(t, "oci-keyring-hook-optin.json.in")))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.When.Annotations) != 1 {
		t.Fatalf("want one annotation condition, got %q", h.When.Annotations)
	}
	for k, v := range h.When.Annotations {
		key, val := regexp.MustCompile(k), regexp.MustCompile(v)
		if !key.MatchString(AnnotationMode) {
			t.Errorf("key pattern %q does not match %q", k, AnnotationMode)
		}
		for _, s := range []string{
			AnnotationName, // a name alone does not opt in
			"x" + AnnotationMode, AnnotationMode + "x",
			"io.oci-keyring-hook.mode.extra", "ioxoci-keyring-hookxmode", "",
		} {
			if key.MatchString(s) {
				t.Errorf("key pattern %q matches %q", k, s)
			}
		}
		// Any value opts in, on purpose: the hook validates it, so a
		// misspelt mode stops the container instead of running it
		// without the hook.
		for _, s := range []string{string(ModeNamed), string(ModeAnonymous), "", "Anonymous", "bogus value"} {
			if !val.MatchString(s) {
				t.Errorf("value pattern %q does not match %q", v, s)
			}
		}
	}
}

func TestReadHooksDAccepts(t *testing.T) {
	for name, in := range map[string]string{
		"commands only":       `{"version":"1.0.0","hook":{"path":"/h"},"when":{"commands":["^/init$"]},"stages":["poststop"]}`,
		"hasBindMounts only":  `{"version":"1.0.0","hook":{"path":"/h"},"when":{"hasBindMounts":true},"stages":["prestart","poststop"]}`,
		"always false":        `{"version":"1.0.0","hook":{"path":"/h"},"when":{"always":false},"stages":["createRuntime"]}`,
		"env and no timeout":  `{"version":"1.0.0","hook":{"path":"/h","env":["A=b"]},"when":{"always":true},"stages":["startContainer"]}`,
		"surrounding spaces":  "\n {\"version\":\"1.0.0\",\"hook\":{\"path\":\"/h\"},\"when\":{\"always\":true},\"stages\":[\"createContainer\"]} \n",
		"annotations and all": `{"version":"1.0.0","hook":{"path":"/h"},"when":{"always":true,"annotations":{"^a$":"^b$"}},"stages":["poststart"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadHooksD(strings.NewReader(in)); err != nil {
				t.Errorf("ReadHooksD(%s): %v", in, err)
			}
		})
	}
}

func TestReadHooksDRejects(t *testing.T) {
	const (
		hook  = `"hook":{"path":"/usr/libexec/oci/hooks.d/h"}`
		when  = `"when":{"always":true}`
		stage = `"stages":["prestart"]`
	)
	tests := []struct {
		name, in, want string
	}{
		{"empty", ``, "EOF"},
		{"null", `null`, "got null"},
		{"array", `[]`, "cannot unmarshal array"},
		{"trailing data", `{"version":"1.0.0",` + hook + `,` + when + `,` + stage + `} {}`, "data after"},
		{"no version", `{` + hook + `,` + when + `,` + stage + `}`, `version "": want "1.0.0"`},
		{"old version", `{"version":"0.1.0",` + hook + `,` + when + `,` + stage + `}`, `version "0.1.0"`},
		{"no hook", `{"version":"1.0.0",` + when + `,` + stage + `}`, "hook.path: missing"},
		{"relative path", `{"version":"1.0.0","hook":{"path":"bin/h"},` + when + `,` + stage + `}`, `hook.path "bin/h": must be absolute`},
		{"zero timeout", `{"version":"1.0.0","hook":{"path":"/h","timeout":0},` + when + `,` + stage + `}`, "hook.timeout 0"},
		{"negative timeout", `{"version":"1.0.0","hook":{"path":"/h","timeout":-5},` + when + `,` + stage + `}`, "hook.timeout -5"},
		{"string timeout", `{"version":"1.0.0","hook":{"path":"/h","timeout":"5"},` + when + `,` + stage + `}`, "cannot unmarshal string"},
		{"no stages", `{"version":"1.0.0",` + hook + `,` + when + `}`, "stages: missing or empty"},
		{"empty stages", `{"version":"1.0.0",` + hook + `,` + when + `,"stages":[]}`, "stages: missing or empty"},
		{"unknown stage", `{"version":"1.0.0",` + hook + `,` + when + `,"stages":["pre-start"]}`, `unknown stage "pre-start"`},
		{"stage case", `{"version":"1.0.0",` + hook + `,` + when + `,"stages":["Prestart"]}`, `unknown stage "Prestart"`},
		{"duplicate stage", `{"version":"1.0.0",` + hook + `,` + when + `,"stages":["prestart","prestart"]}`, `"prestart" listed twice`},
		{"stage not stages", `{"version":"1.0.0",` + hook + `,` + when + `,"stage":["prestart"]}`, `unknown field "stage"`},
		{"no when", `{"version":"1.0.0",` + hook + `,` + stage + `}`, "when: no condition"},
		{"empty when", `{"version":"1.0.0",` + hook + `,"when":{},` + stage + `}`, "when: no condition"},
		{"empty annotations", `{"version":"1.0.0",` + hook + `,"when":{"annotations":{}},` + stage + `}`, "when: no condition"},
		{"annotation not annotations", `{"version":"1.0.0",` + hook + `,"when":{"annotation":{"a":"b"}},` + stage + `}`, `unknown field "annotation"`},
		{"bad key regexp", `{"version":"1.0.0",` + hook + `,"when":{"annotations":{"^(io":".*"}},` + stage + `}`, `key "^(io"`},
		{"bad value regexp", `{"version":"1.0.0",` + hook + `,"when":{"annotations":{"^io$":"[a"}},` + stage + `}`, `value "[a"`},
		{"bad command regexp", `{"version":"1.0.0",` + hook + `,"when":{"commands":["*init"]},` + stage + `}`, `when.commands: "*init"`},
		{"unknown hook member", `{"version":"1.0.0","hook":{"path":"/h","arguments":["x"]},` + when + `,` + stage + `}`, `unknown field "arguments"`},
		{"too large", `{"version":"1.0.0",` + hook + `,` + when + `,` + stage + `,"x":"` + strings.Repeat("a", MaxHooksDSize) + `"}`, "larger than the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ReadHooksD(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("ReadHooksD accepted it: %+v", h)
			}
			if !errors.Is(err, ErrInvalidHooksD) {
				t.Errorf("error %q does not wrap ErrInvalidHooksD", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// Validate reports every broken rule at once, so one run of a checker
// shows everything to fix.
func TestHooksDValidateReportsAllErrors(t *testing.T) {
	zero := 0
	h := &HooksD{Version: "2", Stages: []string{"nope"}}
	h.Hook.Timeout = &zero
	err := h.Validate()
	if err == nil {
		t.Fatal("Validate accepted it")
	}
	for _, want := range []string{`version "2"`, "hook.path: missing", "hook.timeout 0", `unknown stage "nope"`, "when: no condition"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
