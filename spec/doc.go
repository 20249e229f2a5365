// Package spec is the OCI side of the hook: it reads and validates the
// container state a runtime passes on stdin, finds the container's
// annotations, and decides which session keyring the container gets.
//
// Nothing here touches keyrings or processes; see package keyring for that.
package spec
