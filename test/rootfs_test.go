package test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// makeRootfs builds the smallest rootfs the runtimes accept: the static
// probe as /probe and the mount points of the config (proc, dev, sys, tmp).
// Everything is world-readable and the directory is shared read-only by all
// containers of the run, so every mount point must exist up front (a runtime
// creating one would race with another container).
func makeRootfs(dir, probe string) error {
	for _, d := range []string{"", "proc", "dev", "sys", "tmp", "etc"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(dir, "probe"), probe, 0o755); err != nil {
		return fmt.Errorf("copying the probe: %w", err)
	}
	return nil
}

func copyFile(dst, src string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
