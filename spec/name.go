package spec

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultNameTemplate names a container's keyring after the container, as
// crun does; it collides with nothing searchable that runc creates.
const DefaultNameTemplate = "{id}"

const maxNameLen = 255

// ErrInvalidName means a string cannot be used as a keyring name. Its text is
// the rule, so that errors wrapping it explain themselves.
var ErrInvalidName = errors.New("names are 1 to 255 bytes of [A-Za-z0-9._:+-] and must not start with '.'")

// ErrInvalidTemplate means a name template cannot be expanded.
var ErrInvalidTemplate = errors.New("invalid name template")

// sampleID is as long as the longest ids in common use (podman, CRI-O,
// containerd), so ValidateTemplate catches templates that become too long.
const sampleID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// ValidateName reports whether name can be used as a keyring name: 1 to 255
// bytes of [A-Za-z0-9._:+-], not starting with '.' (the kernel refuses to
// join such names). The alphabet keeps names printable in logs and
// /proc/keys.
func ValidateName(name string) error {
	if p := nameProblem(name); p != "" {
		return fmt.Errorf("keyring name %s %s; %w", quote(name), p, ErrInvalidName)
	}
	return nil
}

// nameProblem says which rule name breaks, or "" when it breaks none.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > maxNameLen:
		return fmt.Sprintf("is %d bytes long", len(name))
	case name[0] == '.':
		return "starts with '.'"
	}
	if i := badByte(name); i >= 0 {
		return fmt.Sprintf("contains %s at byte %d", describeByte(name[i]), i)
	}
	return ""
}

// badByte returns the offset of the first byte of s outside the name
// alphabet, or -1.
func badByte(s string) int {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return i
		}
	}
	return -1
}

func isNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("._:+-", c) >= 0
}

// describeByte shows an ASCII byte quoted and in hex, other bytes in hex only
// (quoting a lone byte of a UTF-8 sequence would show the wrong character).
func describeByte(c byte) string {
	if c < 0x80 {
		return fmt.Sprintf("%q (0x%02x)", rune(c), c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// ExpandName substitutes every "{id}" in tmpl with id and validates the
// result with ValidateName. Any other placeholder, or an unbalanced brace, is
// an error.
func ExpandName(tmpl, id string) (string, error) {
	var b strings.Builder
	usesID := false
	for i := 0; i < len(tmpl); {
		switch tmpl[i] {
		case '{':
			end := strings.IndexAny(tmpl[i+1:], "{}")
			if end < 0 || tmpl[i+1+end] == '{' {
				return "", fmt.Errorf("%w %s: unbalanced '{' at byte %d", ErrInvalidTemplate, quote(tmpl), i)
			}
			ph := tmpl[i : i+end+2]
			if ph != "{id}" {
				return "", fmt.Errorf("%w %s: unknown placeholder %s at byte %d (the only one is {id})",
					ErrInvalidTemplate, quote(tmpl), quote(ph), i)
			}
			b.WriteString(id)
			usesID = true
			i += len(ph)
		case '}':
			return "", fmt.Errorf("%w %s: unbalanced '}' at byte %d", ErrInvalidTemplate, quote(tmpl), i)
		default:
			b.WriteByte(tmpl[i])
			i++
		}
	}
	if i := badByte(id); usesID && i >= 0 {
		// runc accepts ids that are not valid names; say what to do instead.
		return "", fmt.Errorf("container id %s cannot be used in a keyring name: it contains %s at byte %d; %w "+
			"(give a name template without {id} with --name, or use --mode anonymous)",
			quote(id), describeByte(id[i]), i, ErrInvalidName)
	}
	name := b.String()
	if p := nameProblem(name); p != "" {
		return "", fmt.Errorf("keyring name %s (from template %s) %s; %w", quote(name), quote(tmpl), p, ErrInvalidName)
	}
	return name, nil
}

// ValidateTemplate checks a name template at start-up by expanding it with a
// sample 64-hex-digit id, so that both bad characters and templates too long
// for real ids are caught before any container is started.
func ValidateTemplate(tmpl string) error {
	if _, err := ExpandName(tmpl, sampleID); err != nil {
		if errors.Is(err, ErrInvalidTemplate) {
			return err
		}
		return fmt.Errorf("%w %s: expanded with a %d-byte container id: %w", ErrInvalidTemplate, quote(tmpl), len(sampleID), err)
	}
	return nil
}
