package spec

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// writeBundle creates a bundle directory holding config.json with content.
func writeBundle(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAnnotations(t *testing.T) {
	const config = `{"ociVersion":"1.0.2","process":{"args":["sh"]},"root":{"path":"rootfs"},` +
		`"annotations":{"io.oci-keyring-hook.name":"from-config"}}`

	tests := []struct {
		name  string
		state specs.State
		want  map[string]string
	}{
		{
			name:  "state wins over config",
			state: specs.State{Bundle: writeBundle(t, config), Annotations: map[string]string{"io.oci-keyring-hook.name": "from-state"}},
			want:  map[string]string{"io.oci-keyring-hook.name": "from-state"},
		},
		{
			name:  "config when the state has none",
			state: specs.State{Bundle: writeBundle(t, config)},
			want:  map[string]string{"io.oci-keyring-hook.name": "from-config"},
		},
		{
			name:  "config when the state's are empty",
			state: specs.State{Bundle: writeBundle(t, config), Annotations: map[string]string{}},
			want:  map[string]string{"io.oci-keyring-hook.name": "from-config"},
		},
		{
			name:  "empty bundle",
			state: specs.State{},
			want:  map[string]string{},
		},
		{
			name:  "missing config.json",
			state: specs.State{Bundle: t.TempDir()},
			want:  map[string]string{},
		},
		{
			name:  "missing bundle directory",
			state: specs.State{Bundle: filepath.Join(t.TempDir(), "gone")},
			want:  map[string]string{},
		},
		{
			name:  "config without annotations",
			state: specs.State{Bundle: writeBundle(t, `{"ociVersion":"1.0.2"}`)},
			want:  map[string]string{},
		},
		{
			name:  "null annotations",
			state: specs.State{Bundle: writeBundle(t, `{"annotations":null}`)},
			want:  map[string]string{},
		},
		{
			// Only "annotations" is decoded: members specs.Spec would
			// refuse do not matter.
			name:  "hostile unrelated members",
			state: specs.State{Bundle: writeBundle(t, `{"process":"not an object","linux":[1,2,3],"annotations":{"k":"v"}}`)},
			want:  map[string]string{"k": "v"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Annotations(&tc.state)
			if err != nil {
				t.Fatalf("Annotations: %v", err)
			}
			if got == nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Annotations = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestAnnotationsRejects(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // creates path, the bundle's config.json
		want  string
	}{
		{
			name: "symlink",
			setup: func(t *testing.T, path string) {
				target := filepath.Join(t.TempDir(), "real.json")
				if err := os.WriteFile(target, []byte(`{"annotations":{"k":"v"}}`), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
			},
			want: "must not be a symbolic link",
		},
		{
			// Without O_NONBLOCK, opening a FIFO with no writer would hang.
			name: "fifo",
			setup: func(t *testing.T, path string) {
				if err := syscall.Mkfifo(path, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: "is a FIFO, not a regular file",
		},
		{
			name: "directory",
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "is a directory, not a regular file",
		},
		{
			name: "oversized",
			setup: func(t *testing.T, path string) {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				// Sparse: costs no disk space, and is refused before reading.
				if err := f.Truncate(MaxConfigSize + 1); err != nil {
					t.Fatal(err)
				}
			},
			want: "16777217 bytes, larger than the limit of 16777216",
		},
		{
			name:  "malformed",
			setup: writeFile(`{"annotations":{"k":"v"}`),
			want:  "unexpected end of JSON input",
		},
		{
			name:  "not an object",
			setup: writeFile(`["annotations"]`),
			want:  "want a JSON object, got array",
		},
		{
			name:  "null",
			setup: writeFile(`null`),
			want:  "want a JSON object, got null",
		},
		{
			name:  "empty file",
			setup: writeFile(``),
			want:  "empty input",
		},
		{
			name:  "annotations of the wrong type",
			setup: writeFile(`{"annotations":["k","v"]}`),
			want:  `field "annotations"`,
		},
		{
			name:  "annotation value of the wrong type",
			setup: writeFile(`{"annotations":{"k":true}}`),
			want:  `field "annotations`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			path := filepath.Join(bundle, "config.json")
			tc.setup(t, path)

			type result struct {
				a   map[string]string
				err error
			}
			done := make(chan result, 1)
			go func() {
				a, err := Annotations(&specs.State{Bundle: bundle})
				done <- result{a, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Annotations blocked")
			}

			if r.err == nil {
				t.Fatalf("Annotations = %#v, want error containing %q", r.a, tc.want)
			}
			if !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", r.err, tc.want)
			}
			if !strings.Contains(r.err.Error(), path) {
				t.Errorf("error %q does not name %s", r.err, path)
			}
		})
	}
}

func writeFile(content string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
