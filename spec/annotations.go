package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// MaxConfigSize bounds config.json read from the bundle (16 MiB).
const MaxConfigSize = 16 << 20

// O_NOFOLLOW refuses a symlinked config.json; O_NONBLOCK keeps a FIFO from
// blocking open until fstat can refuse it.
const configOpenFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// Annotations returns the container's annotations: the state's when it
// carries any, otherwise those of config.json in st.Bundle. An empty Bundle
// or a missing config.json gives an empty map.
func Annotations(st *specs.State) (map[string]string, error) {
	if len(st.Annotations) > 0 {
		return st.Annotations, nil
	}
	if st.Bundle == "" {
		return map[string]string{}, nil
	}
	a, err := readConfigAnnotations(filepath.Join(st.Bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading annotations: %w", err)
	}
	return a, nil
}

// readConfigAnnotations decodes only the "annotations" member of the
// config.json at path, so that the rest of the file cannot get in the way.
func readConfigAnnotations(path string) (map[string]string, error) {
	f, err := os.OpenFile(path, configOpenFlags, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return map[string]string{}, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("%w (config.json must not be a symbolic link)", err)
	case err != nil:
		return nil, err
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, not a regular file", path, fileKind(fi.Mode()))
	}
	if fi.Size() > MaxConfigSize {
		return nil, fmt.Errorf("%s is %d bytes, larger than the limit of %d", path, fi.Size(), MaxConfigSize)
	}
	// The file may grow after fstat: bound the read as well.
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes", path, MaxConfigSize)
	}

	var cfg struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := decodeObject(data, &cfg); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	if cfg.Annotations == nil {
		return map[string]string{}, nil
	}
	return cfg.Annotations, nil
}

func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeDir:
		return "directory"
	case fs.ModeNamedPipe:
		return "FIFO"
	case fs.ModeSocket:
		return "socket"
	case fs.ModeDevice:
		return "block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "character device"
	case fs.ModeSymlink:
		return "symbolic link"
	}
	return "non-regular file"
}
