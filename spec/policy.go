package spec

import "fmt"

// Annotations a container may carry to choose its keyring, where the
// administrator allows it.
const (
	AnnotationMode = "io.oci-keyring-hook.mode"
	AnnotationName = "io.oci-keyring-hook.name"
)

// DefaultPerm is possessor all, owner view: the container's processes can use
// the keyring, and nobody can join it by name (no search bit outside the
// possessor).
const DefaultPerm uint32 = 0x3f010000

// Mode says whether the container's session keyring gets a name.
type Mode string

const (
	// ModeNamed joins a fresh keyring with a name (by default the container
	// id), which identifies it in /proc/keys and in the log.
	ModeNamed Mode = "named"
	// ModeAnonymous joins a fresh keyring with no name.
	ModeAnonymous Mode = "anonymous"
)

// ParseMode returns the Mode spelled exactly s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNamed, ModeAnonymous:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %s (valid: %q, %q)", quote(s), ModeNamed, ModeAnonymous)
}

// Admin is what the administrator chose with flags. A zero field means its
// default: ModeNamed, DefaultNameTemplate, DefaultPerm.
type Admin struct {
	Mode             Mode
	NameTemplate     string
	Perm             uint32
	AllowAnnotations bool // false with --no-annotations
}

// Policy is what the hook will install for one container.
type Policy struct {
	Mode Mode
	Name string // the keyring name; "" in anonymous mode
	Perm uint32
	// Source says which input chose Mode and Name, for logging: "flags" or
	// "annotation <key>".
	Source string
}

// Decide applies the admin's flags, then the container's annotations if
// admin.AllowAnnotations. The name annotation is a literal name, not a
// template, and implies ModeNamed. Without AllowAnnotations the annotations
// are ignored, not even validated.
func Decide(admin Admin, id string, annotations map[string]string) (Policy, error) {
	p := Policy{
		Mode:   admin.Mode,
		Perm:   admin.Perm,
		Source: "flags",
	}
	if p.Mode == "" {
		p.Mode = ModeNamed
	}
	if p.Perm == 0 {
		p.Perm = DefaultPerm
	}
	tmpl := admin.NameTemplate
	if tmpl == "" {
		tmpl = DefaultNameTemplate
	}
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return Policy{}, fmt.Errorf("admin: %w", err)
	}

	if admin.AllowAnnotations {
		mode, hasMode := annotations[AnnotationMode]
		name, hasName := annotations[AnnotationName]
		if hasMode {
			m, err := ParseMode(mode)
			if err != nil {
				return Policy{}, annotationError(AnnotationMode, mode,
					fmt.Sprintf("is not a mode; valid modes are %q and %q", ModeNamed, ModeAnonymous))
			}
			p.Mode, p.Source = m, "annotation "+AnnotationMode
		}
		if hasName {
			if hasMode && p.Mode == ModeAnonymous {
				return Policy{}, annotationError(AnnotationName, name,
					fmt.Sprintf("contradicts %s=%q; a name requires mode %q", AnnotationMode, ModeAnonymous, ModeNamed))
			}
			if prob := nameProblem(name); prob != "" {
				return Policy{}, fmt.Errorf("%w; %w", annotationError(AnnotationName, name, prob), ErrInvalidName)
			}
			p.Mode, p.Name, p.Source = ModeNamed, name, "annotation "+AnnotationName
			return p, nil
		}
	}

	if p.Mode == ModeNamed {
		name, err := ExpandName(tmpl, id)
		if err != nil {
			return Policy{}, err
		}
		p.Name = name
	}
	return p, nil
}

// annotationError reports an annotation value that breaks rule.
func annotationError(key, value, rule string) error {
	return fmt.Errorf("annotation %q: value %s %s", key, quote(value), rule)
}
