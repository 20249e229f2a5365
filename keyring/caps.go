package keyring

import "golang.org/x/sys/unix"

// Caps is what KEYCTL_CAPABILITIES reports: feature bits, KEYCTL_CAPS0_*
// in byte 0 and KEYCTL_CAPS1_* in byte 1 (<linux/keyctl.h>). A kernel newer
// than this code may report more bytes; an older one fewer.
type Caps []byte

// NamespacedNames reports whether keyring names are looked up per user
// namespace (KEYCTL_CAPS1_NS_KEYRING_NAME, Linux 5.3): a container in its
// own user namespace then cannot even find another's keyring by name.
func (c Caps) NamespacedNames() bool { return c.has(1, unix.KEYCTL_CAPS1_NS_KEYRING_NAME) }

// NamespaceTags reports whether keys can be indexed by a namespace tag
// (KEYCTL_CAPS1_NS_KEY_TAG).
func (c Caps) NamespaceTags() bool { return c.has(1, unix.KEYCTL_CAPS1_NS_KEY_TAG) }

func (c Caps) has(i int, bit byte) bool { return len(c) > i && c[i]&bit != 0 }
