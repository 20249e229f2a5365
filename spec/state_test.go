package spec

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

func TestReadStateAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want specs.State
	}{
		{
			name: "runc 1.1.5",
			in:   `{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":1234,"bundle":"/run/b"}`,
			want: specs.State{Version: "1.0.2-dev", ID: "c1", Status: "creating", Pid: 1234, Bundle: "/run/b"},
		},
		{
			// crun writes "root" (the rootfs path) and reports "created" to
			// prestart and createRuntime hooks.
			name: "crun 1.8.1",
			in:   `{"ociVersion":"1.0","id":"c1","pid":1234,"root":"/run/b/rootfs","bundle":"/run/b","status":"created","annotations":{"a":"b"}}`,
			want: specs.State{Version: "1.0", ID: "c1", Status: "created", Pid: 1234, Bundle: "/run/b", Annotations: map[string]string{"a": "b"}},
		},
		{
			name: "podman with annotations",
			in: `{"ociVersion":"1.2.0","id":"6f1a3c9d0b2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",` +
				`"status":"creating","pid":98765,"bundle":"/var/lib/containers/storage/overlay-containers/6f1a/userdata",` +
				`"annotations":{"io.container.manager":"libpod","io.oci-keyring-hook.mode":"anonymous","org.opencontainers.image.stopSignal":"15"}}`,
			want: specs.State{
				Version: "1.2.0", ID: "6f1a3c9d0b2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
				Status: "creating", Pid: 98765, Bundle: "/var/lib/containers/storage/overlay-containers/6f1a/userdata",
				Annotations: map[string]string{
					"io.container.manager":                "libpod",
					"io.oci-keyring-hook.mode":            "anonymous",
					"org.opencontainers.image.stopSignal": "15",
				},
			},
		},
		{
			name: "surrounding whitespace and unknown fields",
			in:   "\n {\"id\":\"c\",\"pid\":2,\"status\":\"created\",\"created\":\"2023-04-01T10:00:00Z\",\"owner\":\"root\",\"extra\":{\"x\":[1,2]}} \n",
			want: specs.State{ID: "c", Status: "created", Pid: 2},
		},
		{
			name: "largest pid",
			in:   `{"id":"c","pid":4194303,"status":"creating"}`,
			want: specs.State{ID: "c", Status: "creating", Pid: 4194303},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadState(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("ReadState: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ReadState:\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestReadStateRejects(t *testing.T) {
	// Valid JSON just over the limit: a state padded with a huge annotation.
	pad := MaxStateSize - len(`{"id":"c","pid":2,"status":"creating","annotations":{"a":""}}`) + 1
	oversized := `{"id":"c","pid":2,"status":"creating","annotations":{"a":"` + strings.Repeat("x", pad) + `"}}`

	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "empty input"},
		{"blank", " \n\t", "empty input"},
		{"truncated", `{"id":"c","pid":12`, "unexpected end of JSON input"},
		{"array", `[{"id":"c","pid":2,"status":"creating"}]`, "want a JSON object, got array"},
		{"string", `"c"`, "want a JSON object, got string"},
		{"number", `42`, "want a JSON object, got number"},
		{"null", `null`, "want a JSON object, got null"},
		{"trailing garbage", `{"id":"c","pid":2,"status":"creating"}x`, "after top-level value"},
		{"two objects", `{"id":"c","pid":2,"status":"creating"}{}`, "after top-level value"},
		{"oversized", oversized, "larger than the limit of 1048576 bytes"},
		{"missing pid", `{"id":"c","status":"creating"}`, "missing pid"},
		{"pid zero", `{"id":"c","pid":0,"status":"creating"}`, "pid 0 is not a container process"},
		{"pid one", `{"id":"c","pid":1,"status":"creating"}`, "pid 1 is not a container process"},
		{"negative pid", `{"id":"c","pid":-5,"status":"creating"}`, "pid -5 is not a container process"},
		{"pid at PID_MAX_LIMIT", `{"id":"c","pid":4194304,"status":"creating"}`, "pid 4194304 is out of range"},
		{"huge pid", `{"id":"c","pid":99999999999,"status":"creating"}`, "out of range"},
		{"pid overflows int", `{"id":"c","pid":1e30,"status":"creating"}`, `field "pid"`},
		{"fractional pid", `{"id":"c","pid":2.5,"status":"creating"}`, `field "pid"`},
		{"pid as string", `{"id":"c","pid":"1234","status":"creating"}`, `field "pid"`},
		{"pid null", `{"id":"c","pid":null,"status":"creating"}`, "missing pid"},
		{"missing id", `{"pid":2,"status":"creating"}`, "missing or empty id"},
		{"empty id", `{"id":"","pid":2,"status":"creating"}`, "missing or empty id"},
		{"id as number", `{"id":7,"pid":2,"status":"creating"}`, `field "id"`},
		{"annotations as array", `{"id":"c","pid":2,"status":"creating","annotations":["a"]}`, `field "annotations"`},
		{"annotation value as number", `{"id":"c","pid":2,"status":"creating","annotations":{"a":1}}`, `field "annotations`},
		{"missing status", `{"id":"c","pid":2}`, `status ""`},
		{"running", `{"id":"c","pid":2,"status":"running"}`, `status "running"`},
		{"stopped", `{"id":"c","pid":2,"status":"stopped"}`, `status "stopped"`},
		{"status case", `{"id":"c","pid":2,"status":"Creating"}`, `status "Creating"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ReadState(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("ReadState = %+v, want error containing %q", st, tc.want)
			}
			if !errors.Is(err, ErrInvalidState) {
				t.Errorf("error %q does not wrap ErrInvalidState", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestReadStateLimit checks the boundary: exactly MaxStateSize bytes is read
// whole, one more is refused.
func TestReadStateLimit(t *testing.T) {
	base := `{"id":"c","pid":2,"status":"creating"}`
	exact := base + strings.Repeat(" ", MaxStateSize-len(base))
	if _, err := ReadState(strings.NewReader(exact)); err != nil {
		t.Errorf("ReadState(%d bytes): %v", len(exact), err)
	}
	if _, err := ReadState(strings.NewReader(exact + " ")); err == nil {
		t.Errorf("ReadState(%d bytes) succeeded, want a size error", len(exact)+1)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestReadStateReadError(t *testing.T) {
	_, err := ReadState(errReader{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("ReadState = %v, want the read error", err)
	}
	if errors.Is(err, ErrInvalidState) {
		t.Errorf("a read error is not an invalid state: %v", err)
	}
}
