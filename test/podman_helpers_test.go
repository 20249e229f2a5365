package test

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oci-keyring-hook/oci-keyring-hook/spec"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// Podman is podman with a store of its own: its own containers.conf and
// storage.conf (through CONTAINERS_CONF and CONTAINERS_STORAGE_CONF), vfs
// storage, run root and libpod tmpdir under a temporary directory (also
// given as flags), no events log. Nothing the host configures for podman,
// and nothing podman keeps on the host, takes part in the tests; the host's
// store is never touched, and cleanup removes only the test's own image and
// containers.
//
// podman runs containers with runc: crun 1.8 refuses this project's
// hybrid-cgroup test machines ("cgroups in hybrid mode not supported") and
// podman offers no way around that short of running it in a mount namespace
// without the cgroup2 mount, so crun is covered by the runtime tests only.
type Podman struct {
	t     *testing.T
	bin   string
	runc  string
	dir   string
	env   []string
	flags []string // global flags: the store
	cids  []string // containers run, for cleanup
	Image string
}

// podmanKeyring is containers.conf's [containers] keyring: true gives runc
// its default new _ses.<id> keyring, false makes podman run runc with
// --no-new-keyring (the host's keyring).
type podmanKeyring bool

// newPodman gates the test on root, podman and runc, sets up the store and
// imports the suite's rootfs as an image. Cleanup removes the test's
// containers and image.
func newPodman(t *testing.T) *Podman {
	t.Helper()
	testutil.RequiresRoot(t)
	p := &Podman{
		t:    t,
		bin:  testutil.RequiresCommand(t, "podman"),
		runc: testutil.RequiresCommand(t, "runc"),
		dir:  t.TempDir(),
	}
	root, runroot := filepath.Join(p.dir, "root"), filepath.Join(p.dir, "runroot")
	storage := filepath.Join(p.dir, "storage.conf")
	writeFile(t, storage, fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", root, runroot))
	p.flags = []string{
		"--root", root, "--runroot", runroot, "--storage-driver", "vfs",
		"--tmpdir", filepath.Join(p.dir, "tmp"), "--events-backend", "none",
	}
	for _, on := range []podmanKeyring{true, false} {
		writeFile(t, p.containersConf(on), fmt.Sprintf("[containers]\nkeyring = %t\n", on))
	}
	// A CONTAINER_HOST or CONTAINER_CONNECTION would make podman a client
	// of some other podman service.
	p.env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CONTAINER_HOST=") || strings.HasPrefix(kv, "CONTAINER_CONNECTION=")
	})
	p.env = append(p.env, "CONTAINERS_STORAGE_CONF="+storage)

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	p.Image = "localhost/okh-e2e-probe:" + hex.EncodeToString(b)
	t.Cleanup(p.cleanup)

	tarball := filepath.Join(p.dir, "rootfs.tar")
	if err := tarDir(tarball, rootfsDir); err != nil {
		t.Fatalf("archiving the rootfs: %v", err)
	}
	if r := p.exec(true, "import", tarball, p.Image); r.ExitCode != 0 {
		t.Fatalf("podman import: %s", r)
	}
	return p
}

func (p *Podman) containersConf(keyring podmanKeyring) string {
	return filepath.Join(p.dir, fmt.Sprintf("containers-keyring-%t.conf", keyring))
}

// command returns `podman args...` in the test's store, with
// containers.conf setting keyring.
func (p *Podman) command(ctx context.Context, keyring podmanKeyring, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, p.bin, append(slices.Clone(p.flags), args...)...)
	cmd.Env = append(p.env, "CONTAINERS_CONF="+p.containersConf(keyring))
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (p *Podman) exec(keyring podmanKeyring, args ...string) *Result {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return execute(p.command(ctx, keyring, args...))
}

// cleanup removes the test's containers (--rm normally did already) and
// its image.
func (p *Podman) cleanup() {
	if len(p.cids) > 0 {
		if r := p.exec(true, append([]string{"rm", "--force", "--ignore"}, p.cids...)...); r.ExitCode != 0 {
			p.t.Errorf("cleanup: %s", r)
		}
	}
	if r := p.exec(true, "rmi", "--force", "--ignore", p.Image); r.ExitCode != 0 {
		p.t.Errorf("cleanup: %s", r)
	}
}

// PodmanRun is one `podman run --rm` of the probe.
type PodmanRun struct {
	HooksDir    string // --hooks-dir; an empty directory means no hooks at all
	Keyring     podmanKeyring
	Annotations map[string]string
	Args        []string // the probe's command line
}

// Run runs the container to its end and returns what podman did and the
// container's full id (from --cidfile).
func (p *Podman) Run(o PodmanRun) (*Result, string) {
	p.t.Helper()
	cidFile := filepath.Join(p.t.TempDir(), "cid")
	args := []string{
		"--hooks-dir", o.HooksDir,
		"run", "--rm", "--runtime", p.runc, "--cidfile", cidFile,
		"--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
	}
	keys := make([]string, 0, len(o.Annotations))
	for k := range o.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--annotation", k+"="+o.Annotations[k])
	}
	args = append(append(args, p.Image), o.Args...)
	r := p.exec(o.Keyring, args...)
	p.t.Logf("keyring=%t %s", o.Keyring, r)
	b, err := os.ReadFile(cidFile)
	if err != nil {
		if r.ExitCode == 0 {
			p.t.Fatalf("podman ran the container but wrote no container id: %v", err)
		}
		return r, ""
	}
	cid := strings.TrimSpace(string(b))
	p.cids = append(p.cids, cid)
	if !podmanID.MatchString(cid) {
		p.t.Fatalf("container id %q from --cidfile is not 64 hex digits", cid)
	}
	return r, cid
}

var podmanID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// tarDir writes the tree under dir to a tar file, owned by root.
func tarDir(out, dir string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name, h.Uid, h.Gid, h.Uname, h.Gname = filepath.ToSlash(rel), 0, 0, "", ""
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// installHook runs `make target PREFIX=<temporary directory>` and returns
// the hooks.d directory it wrote, after checking that its file names the
// binary make installed.
func installHook(t *testing.T, target string) string {
	t.Helper()
	prefix := t.TempDir()
	runMake(t, target, "PREFIX="+prefix)
	hooksDir := filepath.Join(prefix, "share", "containers", "oci", "hooks.d")
	f, err := os.Open(filepath.Join(hooksDir, "oci-keyring-hook.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := spec.ReadHooksD(f)
	if err != nil {
		t.Fatalf("make %s: %v", target, err)
	}
	if want := filepath.Join(prefix, "libexec", "oci", "hooks.d", "oci-keyring-hook"); h.Hook.Path != want {
		t.Fatalf("make %s: hook.path = %s, want %s", target, h.Hook.Path, want)
	}
	if fi, err := os.Stat(h.Hook.Path); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("make %s: the hook binary is missing or not executable: %v", target, err)
	}
	return hooksDir
}
