package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"named", ModeNamed, false},
		{"anonymous", ModeAnonymous, false},
		{"", "", true},
		{"Named", "", true},
		{"anon", "", true},
		{"named ", "", true},
	}
	for _, tc := range tests {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestDecide(t *testing.T) {
	const id = "c1"
	named := Admin{Mode: ModeNamed, NameTemplate: "{id}", Perm: DefaultPerm, AllowAnnotations: true}
	anon := Admin{Mode: ModeAnonymous, NameTemplate: "{id}", Perm: 0x3f000000, AllowAnnotations: true}
	strict := Admin{Mode: ModeNamed, NameTemplate: "k-{id}", Perm: DefaultPerm, AllowAnnotations: false}
	const (
		fromFlags = "flags"
		fromMode  = "annotation " + AnnotationMode
		fromName  = "annotation " + AnnotationName
	)

	tests := []struct {
		name  string
		admin Admin
		ann   map[string]string
		want  Policy
	}{
		{"flags named", named, nil, Policy{ModeNamed, "c1", DefaultPerm, fromFlags}},
		{"flags template", Admin{Mode: ModeNamed, NameTemplate: "k8s-{id}", Perm: DefaultPerm}, nil, Policy{ModeNamed, "k8s-c1", DefaultPerm, fromFlags}},
		{"flags anonymous", anon, nil, Policy{ModeAnonymous, "", 0x3f000000, fromFlags}},
		{"zero admin gets defaults", Admin{}, nil, Policy{ModeNamed, "c1", DefaultPerm, fromFlags}},
		{"unrelated annotations", named, map[string]string{"io.kubernetes.pod.name": "p"}, Policy{ModeNamed, "c1", DefaultPerm, fromFlags}},
		{"annotation anonymous", named, map[string]string{AnnotationMode: "anonymous"}, Policy{ModeAnonymous, "", DefaultPerm, fromMode}},
		{"annotation named over anonymous flags", anon, map[string]string{AnnotationMode: "named"}, Policy{ModeNamed, "c1", 0x3f000000, fromMode}},
		{"annotation name", named, map[string]string{AnnotationName: "team-a.krb5"}, Policy{ModeNamed, "team-a.krb5", DefaultPerm, fromName}},
		{"annotation name implies named", anon, map[string]string{AnnotationName: "x"}, Policy{ModeNamed, "x", 0x3f000000, fromName}},
		{"annotation name and mode named", anon, map[string]string{AnnotationMode: "named", AnnotationName: "x"}, Policy{ModeNamed, "x", 0x3f000000, fromName}},
		{"annotation name is literal", named, map[string]string{AnnotationName: "id"}, Policy{ModeNamed, "id", DefaultPerm, fromName}},
		{"ignored when not allowed", strict, map[string]string{AnnotationMode: "anonymous", AnnotationName: "x"}, Policy{ModeNamed, "k-c1", DefaultPerm, fromFlags}},
		{"invalid values ignored when not allowed", strict, map[string]string{AnnotationMode: "bogus", AnnotationName: "a b"}, Policy{ModeNamed, "k-c1", DefaultPerm, fromFlags}},
		{"contradiction ignored when not allowed", strict, map[string]string{AnnotationMode: "anonymous", AnnotationName: "{x}"}, Policy{ModeNamed, "k-c1", DefaultPerm, fromFlags}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decide(tc.admin, id, tc.ann)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got != tc.want {
				t.Errorf("Decide:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecideRejects(t *testing.T) {
	named := Admin{Mode: ModeNamed, NameTemplate: "{id}", Perm: DefaultPerm, AllowAnnotations: true}
	tests := []struct {
		name   string
		admin  Admin
		id     string
		ann    map[string]string
		want   string
		wantIs error
	}{
		{
			name: "name with space", admin: named, id: "c1",
			ann: map[string]string{AnnotationName: "a b"},
			want: `annotation "io.oci-keyring-hook.name": value "a b" contains ' ' (0x20) at byte 1; ` +
				`names are 1 to 255 bytes of [A-Za-z0-9._:+-] and must not start with '.'`,
			wantIs: ErrInvalidName,
		},
		{
			name: "name is not a template", admin: named, id: "c1",
			ann:  map[string]string{AnnotationName: "{id}"},
			want: `value "{id}" contains '{' (0x7b) at byte 0`, wantIs: ErrInvalidName,
		},
		{
			name: "name with leading dot", admin: named, id: "c1",
			ann:  map[string]string{AnnotationName: ".hidden"},
			want: `value ".hidden" starts with '.'`, wantIs: ErrInvalidName,
		},
		{
			name: "empty name", admin: named, id: "c1",
			ann:  map[string]string{AnnotationName: ""},
			want: `value "" is empty`, wantIs: ErrInvalidName,
		},
		{
			name: "long name is cut in the message", admin: named, id: "c1",
			ann:  map[string]string{AnnotationName: strings.Repeat("n", 300)},
			want: `value "` + strings.Repeat("n", 80) + `"... is 300 bytes long`, wantIs: ErrInvalidName,
		},
		{
			name: "bad mode", admin: named, id: "c1",
			ann:  map[string]string{AnnotationMode: "private"},
			want: `annotation "io.oci-keyring-hook.mode": value "private" is not a mode`,
		},
		{
			name: "empty mode", admin: named, id: "c1",
			ann:  map[string]string{AnnotationMode: ""},
			want: `annotation "io.oci-keyring-hook.mode": value "" is not a mode`,
		},
		{
			name: "contradiction", admin: named, id: "c1",
			ann:  map[string]string{AnnotationMode: "anonymous", AnnotationName: "x"},
			want: `annotation "io.oci-keyring-hook.name": value "x" contradicts io.oci-keyring-hook.mode="anonymous"`,
		},
		{
			name: "id unusable as a name", admin: named, id: "my container",
			want: `container id "my container" cannot be used in a keyring name`, wantIs: ErrInvalidName,
		},
		{
			name: "id unusable with annotations ignored", admin: Admin{Mode: ModeNamed}, id: "a/b",
			ann:  map[string]string{AnnotationName: "fine"},
			want: `container id "a/b" cannot be used`, wantIs: ErrInvalidName,
		},
		{
			name: "bad admin template", admin: Admin{Mode: ModeNamed, NameTemplate: "{name}"}, id: "c1",
			want: `unknown placeholder "{name}"`, wantIs: ErrInvalidTemplate,
		},
		{
			name: "bad admin mode", admin: Admin{Mode: "private"}, id: "c1",
			want: `unknown mode "private"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decide(tc.admin, tc.id, tc.ann)
			if err == nil {
				t.Fatalf("Decide = %+v, want error containing %q", p, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tc.wantIs)
			}
			if p != (Policy{}) {
				t.Errorf("Decide returned %+v with its error, want the zero Policy", p)
			}
		})
	}
}

// TestDecideAnonymousNeedsNoID checks that anonymous mode does not depend
// on the id being a valid name.
func TestDecideAnonymousNeedsNoID(t *testing.T) {
	for _, admin := range []Admin{
		{Mode: ModeAnonymous},
		{Mode: ModeNamed, AllowAnnotations: true},
	} {
		p, err := Decide(admin, "id with spaces", map[string]string{AnnotationMode: "anonymous"})
		if err != nil || p.Mode != ModeAnonymous || p.Name != "" {
			t.Errorf("Decide(%+v) = %+v, %v; want anonymous with no name", admin, p, err)
		}
	}
}
