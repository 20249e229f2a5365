package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" means valid
	}{
		{"simple", "c1", ""},
		{"whole alphabet", "AZaz09._:+-", ""},
		{"64 hex", sampleID, ""},
		{"exactly 255", strings.Repeat("a", 255), ""},
		{"inner dot", "a.b", ""},
		{"leading dash", "-a", ""},
		{"empty", "", "is empty"},
		{"256 bytes", strings.Repeat("a", 256), "is 256 bytes long"},
		{"leading dot", ".a", "starts with '.'"},
		{"dot only", ".", "starts with '.'"},
		{"space", "a b", `contains ' ' (0x20) at byte 1`},
		{"newline", "ab\n", `contains '\n' (0x0a) at byte 2`},
		{"nul", "a\x00", `contains '\x00' (0x00) at byte 1`},
		{"escape", "\x1b[31m", `contains '\x1b' (0x1b) at byte 0`},
		{"del", "a\x7f", `(0x7f) at byte 1`},
		{"slash", "a/b", `contains '/' (0x2f) at byte 1`},
		{"brace", "{id}", `contains '{' (0x7b) at byte 0`},
		{"utf-8", "caf\u00e9", "contains byte 0xc3 at byte 3"},
		{"invalid utf-8", "a\xff", "contains byte 0xff at byte 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.in)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q): %v", tc.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateName(%q) = nil, want error containing %q", tc.in, tc.want)
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("error %q does not wrap ErrInvalidName", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), ErrInvalidName.Error()) {
				t.Errorf("error %q does not state the rule", err)
			}
		})
	}
}

func TestValidateNameTruncatesValue(t *testing.T) {
	err := ValidateName(strings.Repeat("x", 1000))
	if err == nil {
		t.Fatal("ValidateName accepted 1000 bytes")
	}
	if want := `"` + strings.Repeat("x", 80) + `"...`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not quote the value cut to 80 bytes", err)
	}
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long: %q", len(err.Error()), err)
	}
}

func TestExpandName(t *testing.T) {
	const hexID = "6f1a3c9d0b2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
	tests := []struct {
		name    string
		tmpl    string
		id      string
		want    string
		wantErr string
		wantIs  error
	}{
		{name: "id", tmpl: "{id}", id: "c1", want: "c1"},
		{name: "prefix", tmpl: "k8s-{id}", id: hexID, want: "k8s-" + hexID},
		{name: "twice", tmpl: "{id}{id}", id: "ab", want: "abab"},
		{name: "around", tmpl: "a:{id}.b", id: "x", want: "a:x.b"},
		{name: "fixed", tmpl: "shared", id: "any id at all", want: "shared"},
		{name: "unknown placeholder", tmpl: "{name}", id: "c1", wantErr: `unknown placeholder "{name}" at byte 0`, wantIs: ErrInvalidTemplate},
		{name: "empty placeholder", tmpl: "a{}", id: "c1", wantErr: `unknown placeholder "{}" at byte 1`, wantIs: ErrInvalidTemplate},
		{name: "unbalanced open", tmpl: "{id", id: "c1", wantErr: "unbalanced '{' at byte 0", wantIs: ErrInvalidTemplate},
		{name: "nested", tmpl: "{{id}}", id: "c1", wantErr: "unbalanced '{' at byte 0", wantIs: ErrInvalidTemplate},
		{name: "unbalanced close", tmpl: "id}", id: "c1", wantErr: "unbalanced '}' at byte 2", wantIs: ErrInvalidTemplate},
		{name: "close after id", tmpl: "{id}}", id: "c1", wantErr: "unbalanced '}' at byte 4", wantIs: ErrInvalidTemplate},
		{name: "placeholder case", tmpl: "{ID}", id: "c1", wantErr: `unknown placeholder "{ID}"`, wantIs: ErrInvalidTemplate},
		{
			name: "id with space", tmpl: "{id}", id: "my container",
			wantErr: `container id "my container" cannot be used in a keyring name: it contains ' ' (0x20) at byte 2`,
			wantIs:  ErrInvalidName,
		},
		{name: "id advice", tmpl: "k-{id}", id: "a/b", wantErr: "--mode anonymous", wantIs: ErrInvalidName},
		{name: "id with leading dot", tmpl: "{id}", id: ".c", wantErr: `keyring name ".c" (from template "{id}") starts with '.'`, wantIs: ErrInvalidName},
		{name: "empty id", tmpl: "{id}", id: "", wantErr: "is empty", wantIs: ErrInvalidName},
		{name: "too long", tmpl: strings.Repeat("p", 200) + "{id}", id: hexID, wantErr: "is 264 bytes long", wantIs: ErrInvalidName},
		{name: "bad literal", tmpl: "a b{id}", id: "c1", wantErr: `contains ' ' (0x20) at byte 1`, wantIs: ErrInvalidName},
		{name: "empty template", tmpl: "", id: "c1", wantErr: "is empty", wantIs: ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExpandName(tc.tmpl, tc.id)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Fatalf("ExpandName(%q, %q) = %q, %v; want %q", tc.tmpl, tc.id, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ExpandName(%q, %q) = %q, want error containing %q", tc.tmpl, tc.id, got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tc.wantIs)
			}
		})
	}
}

func TestValidateTemplate(t *testing.T) {
	tests := []struct {
		tmpl string
		ok   bool
	}{
		{"{id}", true},
		{"k8s-{id}", true},
		{"{id}{id}", true},
		{"fixed", true},
		{strings.Repeat("p", 191) + "{id}", true}, // 255 bytes with a 64-byte id
		{strings.Repeat("p", 192) + "{id}", false},
		{"{id}{id}{id}{id}", false}, // 256 bytes
		{"{name}", false},
		{"{id", false},
		{"a b-{id}", false},
		{".{id}", false},
		{"", false},
	}
	for _, tc := range tests {
		err := ValidateTemplate(tc.tmpl)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTemplate(%q) = %v, want ok %v", tc.tmpl, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTemplate) {
			t.Errorf("ValidateTemplate(%q) error %q does not wrap ErrInvalidTemplate", tc.tmpl, err)
		}
	}
}
