package spec

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// nameRE restates the name rule independently of ValidateName.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_:+-][A-Za-z0-9._:+-]{0,254}$`)

func FuzzReadState(f *testing.F) {
	for _, s := range []string{
		`{"ociVersion":"1.0.2-dev","id":"c1","status":"creating","pid":1234,"bundle":"/run/b"}`,
		`{"ociVersion":"1.0","id":"c1","pid":1234,"root":"/b/rootfs","bundle":"/b","status":"created","annotations":{"a":"b"}}`,
		`{"id":"c","pid":"2","status":"creating"}`,
		`{"id":"c","pid":2,"status":"creating"}x`,
		`null`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ReadState(strings.NewReader(string(data)))
		if err != nil {
			if st != nil {
				t.Fatalf("ReadState returned %+v with error %v", st, err)
			}
			return
		}
		if st.ID == "" || st.Pid <= 1 || st.Pid >= pidMaxLimit {
			t.Fatalf("ReadState accepted id %q pid %d", st.ID, st.Pid)
		}
		if st.Status != specs.StateCreating && st.Status != specs.StateCreated {
			t.Fatalf("ReadState accepted status %q", st.Status)
		}
		// What was accepted must survive a round trip unchanged.
		out, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ReadState(strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("ReadState(%s) after a round trip: %v", out, err)
		}
		if !reflect.DeepEqual(st, again) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", st, again)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"c1", "", ".a", "a b", "a\x00", strings.Repeat("a", 255), strings.Repeat("a", 256), "caf\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if ok := nameRE.MatchString(name); ok != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, but the rule says valid=%v", name, err, ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("ValidateName(%q) error %q does not wrap ErrInvalidName", name, err)
		}
	})
}

func FuzzExpandName(f *testing.F) {
	f.Add("{id}", "c1")
	f.Add("k8s-{id}", sampleID)
	f.Add("{id}{id}", "ab")
	f.Add("{name}", "c1")
	f.Add("{id", "c1")
	f.Add("}{", "c1")
	f.Add("{id}", "a b")
	f.Fuzz(func(t *testing.T, tmpl, id string) {
		name, err := ExpandName(tmpl, id)
		if err != nil {
			if name != "" {
				t.Fatalf("ExpandName(%q, %q) returned %q with error %v", tmpl, id, name, err)
			}
			if !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrInvalidTemplate) {
				t.Fatalf("ExpandName(%q, %q) error %q wraps no sentinel", tmpl, id, err)
			}
			return
		}
		if !nameRE.MatchString(name) {
			t.Fatalf("ExpandName(%q, %q) = %q, which breaks the name rule", tmpl, id, name)
		}
		// A template that expands has no braces left besides {id}.
		if rest := strings.ReplaceAll(tmpl, "{id}", ""); strings.ContainsAny(rest, "{}") {
			t.Fatalf("ExpandName accepted template %q", tmpl)
		}
		if want := strings.ReplaceAll(tmpl, "{id}", id); name != want {
			t.Fatalf("ExpandName(%q, %q) = %q, want %q", tmpl, id, name, want)
		}
	})
}

func FuzzDecide(f *testing.F) {
	f.Add("named", "{id}", "c1", "", "", false, false, true)
	f.Add("anonymous", "{id}", "c1", "named", "x", true, true, true)
	f.Add("named", "k-{id}", "a b", "anonymous", "", true, false, true)
	f.Add("", "", "c1", "anonymous", "x", true, true, true)
	f.Add("named", "{id}", "c1", "bogus", "a b", true, true, false)
	f.Fuzz(func(t *testing.T, mode, tmpl, id, annMode, annName string, hasMode, hasName, allow bool) {
		admin := Admin{Mode: Mode(mode), NameTemplate: tmpl, Perm: DefaultPerm, AllowAnnotations: allow}
		ann := map[string]string{"other": annName}
		if hasMode {
			ann[AnnotationMode] = annMode
		}
		if hasName {
			ann[AnnotationName] = annName
		}
		p, err := Decide(admin, id, ann)
		if !allow {
			// Ignored annotations must not change anything.
			p2, err2 := Decide(admin, id, nil)
			if p != p2 || (err == nil) != (err2 == nil) {
				t.Fatalf("annotations changed the outcome though not allowed: %+v, %v vs %+v, %v", p, err, p2, err2)
			}
		}
		if err != nil {
			if p != (Policy{}) {
				t.Fatalf("Decide returned %+v with error %v", p, err)
			}
			return
		}
		if p.Perm != DefaultPerm {
			t.Fatalf("Decide changed the permissions to %#x", p.Perm)
		}
		switch p.Mode {
		case ModeNamed:
			if !nameRE.MatchString(p.Name) {
				t.Fatalf("Decide chose invalid name %q", p.Name)
			}
		case ModeAnonymous:
			if p.Name != "" {
				t.Fatalf("Decide chose name %q in anonymous mode", p.Name)
			}
		default:
			t.Fatalf("Decide chose mode %q", p.Mode)
		}
		if allow && hasName && (p.Mode != ModeNamed || p.Name != annName) {
			t.Fatalf("Decide ignored the name annotation %q: %+v", annName, p)
		}
		if allow && hasMode && !hasName && p.Mode != Mode(annMode) {
			t.Fatalf("Decide ignored the mode annotation %q: %+v", annMode, p)
		}
		if !(allow && (hasMode || hasName)) && p.Source != "flags" {
			t.Fatalf("Decide says the source is %q, want flags", p.Source)
		}
	})
}
