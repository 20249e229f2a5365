package test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oci-keyring-hook/oci-keyring-hook/spec"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// These tests need no root: they run `make install` into a DESTDIR, check
// the hooks.d file it writes, and check that deploy/kubernetes installs the
// same files at the same places.

// moduleRoot is the repository root, seen from test/.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runMake runs `make args...` in the module root. install targets build
// into a temporary BIN so the tests leave the source tree alone.
func runMake(t *testing.T, args ...string) {
	t.Helper()
	mk := testutil.RequiresCommand(t, "make")
	goTool := testutil.RequiresCommand(t, "go")
	args = append(args, "GO="+goTool, "BIN="+filepath.Join(t.TempDir(), "oci-keyring-hook"))
	cmd := exec.Command(mk, args...)
	cmd.Dir = moduleRoot(t)
	// Under `make test` the parent make's flags and command-line variables
	// would reach this make through the environment.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, v := range []string{"MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=", "MAKEOVERRIDES=", "DESTDIR=", "PREFIX="} {
			if strings.HasPrefix(kv, v) {
				return true
			}
		}
		return false
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", shellJoin(args), err, out)
	}
}

// Installed is what one `make install` wrote under DESTDIR.
type Installed struct {
	DestDir string
	Binary  string // path on the target system (without DESTDIR)
	HooksD  string // the hooks.d file, path on the target system
	Config  *spec.HooksD
}

// makeInstall runs `make target PREFIX=prefix DESTDIR=destdir` and returns
// the two files it installed, failing the test if it wrote anything else.
func makeInstall(t *testing.T, target, prefix, destdir string) *Installed {
	t.Helper()
	runMake(t, target, "PREFIX="+prefix, "DESTDIR="+destdir)
	files := regularFiles(t, destdir)
	if len(files) != 2 {
		t.Fatalf("make %s wrote %d files, want the binary and the hooks.d file: %q", target, len(files), files)
	}
	in := &Installed{DestDir: destdir}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(destdir, f))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(f, ".json"):
			in.HooksD = f
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", f, fi.Mode().Perm())
			}
		default:
			in.Binary = f
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want 0755", f, fi.Mode().Perm())
			}
		}
	}
	if in.Binary == "" || in.HooksD == "" {
		t.Fatalf("make %s wrote %q, want a binary and a .json file", target, files)
	}
	f, err := os.Open(filepath.Join(destdir, in.HooksD))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if in.Config, err = spec.ReadHooksD(f); err != nil {
		t.Fatalf("%s does not validate: %v", in.HooksD, err)
	}
	return in
}

// regularFiles lists the regular files under dir, as absolute paths on the
// target system (dir stands for /).
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%v)", p, d.Type())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, "/"+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestMakeInstall(t *testing.T) {
	dest := t.TempDir()
	in := makeInstall(t, "install", "/usr", dest)

	if in.Binary != "/usr/libexec/oci/hooks.d/oci-keyring-hook" {
		t.Errorf("binary installed at %s, want /usr/libexec/oci/hooks.d/oci-keyring-hook", in.Binary)
	}
	if in.HooksD != "/usr/share/containers/oci/hooks.d/oci-keyring-hook.json" {
		t.Errorf("hooks.d file installed at %s, want /usr/share/containers/oci/hooks.d/oci-keyring-hook.json", in.HooksD)
	}
	// The hooks.d file names the binary where it will be on the system,
	// without DESTDIR.
	if in.Config.Hook.Path != in.Binary {
		t.Errorf("hook.path = %q, want the installed binary %q", in.Config.Hook.Path, in.Binary)
	}
	checkHookArgs(t, in.Config)
	if in.Config.When.Always == nil || !*in.Config.When.Always || len(in.Config.When.Annotations) != 0 {
		t.Errorf("when = %+v, want always", in.Config.When)
	}

	// The installed file is the hook itself.
	out, err := exec.Command(filepath.Join(dest, in.Binary), "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "oci-keyring-hook ") {
		t.Errorf("%s --version: %v\n%s", in.Binary, err, out)
	}

	// install-optin replaces the hooks.d file; the binary stays.
	opt := makeInstall(t, "install-optin", "/usr", dest)
	if opt.Binary != in.Binary || opt.HooksD != in.HooksD {
		t.Errorf("install-optin wrote %s and %s, want %s and %s", opt.Binary, opt.HooksD, in.Binary, in.HooksD)
	}
	if opt.Config.When.Always != nil || len(opt.Config.When.Annotations) != 1 {
		t.Errorf("install-optin: when = %+v, want one annotation condition", opt.Config.When)
	}
	for k, v := range opt.Config.When.Annotations {
		if want := `^io\.oci-keyring-hook\.mode$`; k != want {
			t.Errorf("opt-in annotation key = %q, want %q", k, want)
		}
		if want := `^.*$`; v != want {
			t.Errorf("opt-in annotation value = %q, want %q", v, want)
		}
	}

	runMake(t, "uninstall", "PREFIX=/usr", "DESTDIR="+dest)
	if files := regularFiles(t, dest); len(files) != 0 {
		t.Errorf("make uninstall left %q", files)
	}
}

// PREFIX moves both files and the path inside the hooks.d file.
func TestMakeInstallPrefix(t *testing.T) {
	dest := t.TempDir()
	in := makeInstall(t, "install", "/opt/okh", dest)
	if want := "/opt/okh/libexec/oci/hooks.d/oci-keyring-hook"; in.Binary != want || in.Config.Hook.Path != want {
		t.Errorf("binary at %s, hook.path %s, want both %s", in.Binary, in.Config.Hook.Path, want)
	}
	if want := "/opt/okh/share/containers/oci/hooks.d/oci-keyring-hook.json"; in.HooksD != want {
		t.Errorf("hooks.d file at %s, want %s", in.HooksD, want)
	}
}

// checkHookArgs checks that the hooks.d file calls the hook the way its
// usage asks: a stage word it accepts, last.
func checkHookArgs(t *testing.T, h *spec.HooksD) {
	t.Helper()
	args := h.Hook.Args
	if len(args) < 2 || args[0] != "oci-keyring-hook" {
		t.Fatalf("hook.args = %q, want argv[0] oci-keyring-hook and a stage", args)
	}
	if _, err := spec.ParseStage(args[len(args)-1]); err != nil {
		t.Errorf("hook.args = %q: %v", args, err)
	}
	if !slices.Contains(h.Stages, args[len(args)-1]) {
		t.Errorf("hook.args end in %q, stages are %q", args[len(args)-1], h.Stages)
	}
	if h.Hook.Timeout == nil {
		t.Errorf("hook.timeout unset: a hung hook would hold the container forever")
	}
}

// ---------------------------------------------------------------------------
// deploy/kubernetes

// kubeDir holds the installer (Dockerfile, node-install.sh) and the
// kustomizations: the default one and the optin and uninstall overlays, all
// on base/.
const (
	kubeDir  = "../deploy/kubernetes"
	kubeBase = kubeDir + "/base"
)

// The subset of the Kubernetes objects the manifests use. Decoding is
// strict: a field not listed here (a typo such as mountpath) fails the test.
type (
	objectMeta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	namespace struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
	}
	daemonSet struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       struct {
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
			UpdateStrategy struct {
				Type          string `yaml:"type"`
				RollingUpdate struct {
					MaxUnavailable any `yaml:"maxUnavailable"`
				} `yaml:"rollingUpdate"`
			} `yaml:"updateStrategy"`
			Template struct {
				Metadata objectMeta `yaml:"metadata"`
				Spec     podSpec    `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		NodeSelector                  map[string]string `yaml:"nodeSelector"`
		Tolerations                   []map[string]any  `yaml:"tolerations"`
		AutomountServiceAccountToken  *bool             `yaml:"automountServiceAccountToken"`
		EnableServiceLinks            *bool             `yaml:"enableServiceLinks"`
		TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
		HostPID                       bool              `yaml:"hostPID"`
		HostNetwork                   bool              `yaml:"hostNetwork"`
		HostIPC                       bool              `yaml:"hostIPC"`
		InitContainers                []container       `yaml:"initContainers"`
		Containers                    []container       `yaml:"containers"`
		Volumes                       []volume          `yaml:"volumes"`
	}
	container struct {
		Name            string   `yaml:"name"`
		Image           string   `yaml:"image"`
		ImagePullPolicy string   `yaml:"imagePullPolicy"`
		Command         []string `yaml:"command"`
		Args            []string `yaml:"args"`
		Env             []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		SecurityContext struct {
			Privileged               *bool `yaml:"privileged"`
			RunAsUser                *int  `yaml:"runAsUser"`
			RunAsGroup               *int  `yaml:"runAsGroup"`
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Add  []string `yaml:"add"`
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
			SELinuxOptions struct {
				Type string `yaml:"type"`
			} `yaml:"seLinuxOptions"`
		} `yaml:"securityContext"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	volume struct {
		Name     string `yaml:"name"`
		HostPath *struct {
			Path string `yaml:"path"`
			Type string `yaml:"type"`
		} `yaml:"hostPath"`
	}
	kustomization struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
		Images     []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
		Patches []struct {
			Target struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"target"`
			Patch string `yaml:"patch"`
		} `yaml:"patches"`
	}
	jsonPatchOp struct {
		Op    string `yaml:"op"`
		Path  string `yaml:"path"`
		Value any    `yaml:"value"`
	}
)

// decodeStrict decodes exactly one YAML document of file into v, refusing
// unknown fields.
func decodeStrict(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	decodeStrictBytes(t, file, b, v)
}

func decodeStrictBytes(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("%s: more than one YAML document", what)
	}
}

// loadDaemonSet returns the DaemonSet both as typed and as a generic tree
// (for applying the overlays' patches).
func loadDaemonSet(t *testing.T) (*daemonSet, map[string]any) {
	t.Helper()
	var ds daemonSet
	decodeStrict(t, filepath.Join(kubeBase, "daemonset.yaml"), &ds)
	var tree map[string]any
	b, err := os.ReadFile(filepath.Join(kubeBase, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	return &ds, tree
}

// envOf returns the value of the environment variable name in c.
func envOf(t *testing.T, c container, name string) string {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	t.Fatalf("container %s sets no %s", c.Name, name)
	return ""
}

// hostMount returns the hostPath volume mounted at mountPath in c.
func hostMount(t *testing.T, ps podSpec, c container, mountPath string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != mountPath {
			continue
		}
		if m.ReadOnly {
			t.Errorf("%s is mounted read-only in %s: the installer must write it", mountPath, c.Name)
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name {
				if v.HostPath == nil {
					t.Fatalf("volume %s mounted at %s is not a hostPath", v.Name, mountPath)
				}
				return v.HostPath.Path
			}
		}
		t.Fatalf("volume %s mounted at %s is not declared", m.Name, mountPath)
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, mountPath)
	return ""
}

// The installer writes the files `make install PREFIX=/usr` writes, at the
// same places on the node, and the hooks.d file names the binary there.
func TestKubernetesDaemonSetMatchesMakeInstall(t *testing.T) {
	in := makeInstall(t, "install", "/usr", t.TempDir())
	ds, _ := loadDaemonSet(t)
	ps := ds.Spec.Template.Spec

	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" {
		t.Errorf("daemonset.yaml is %s %s", ds.APIVersion, ds.Kind)
	}
	for k, v := range ds.Spec.Selector.MatchLabels {
		if ds.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("selector %s=%s does not select the pod template (labels %v)", k, v, ds.Spec.Template.Metadata.Labels)
		}
	}
	if len(ds.Spec.Selector.MatchLabels) == 0 {
		t.Error("empty selector")
	}
	if len(ps.InitContainers) != 1 {
		t.Fatalf("want one init container (the installer), got %d", len(ps.InitContainers))
	}
	inst := ps.InitContainers[0]
	if !reflect.DeepEqual(inst.Command, []string{"/node-install.sh"}) || !reflect.DeepEqual(inst.Args, []string{"install"}) {
		t.Errorf("installer runs %q %q, want /node-install.sh install", inst.Command, inst.Args)
	}

	// Where the installer writes, and which node directory that is.
	binDir := hostMount(t, ps, inst, envOf(t, inst, "OKH_BINDIR"))
	hooksDir := hostMount(t, ps, inst, envOf(t, inst, "OKH_HOOKSDIR"))
	if want := filepath.Dir(in.Binary); binDir != want {
		t.Errorf("the binary goes to the node's %s, make install puts it in %s", binDir, want)
	}
	if want := filepath.Dir(in.HooksD); hooksDir != want {
		t.Errorf("the hooks.d file goes to the node's %s, make install puts it in %s", hooksDir, want)
	}
	if got := filepath.Join(binDir, "oci-keyring-hook"); in.Config.Hook.Path != got {
		t.Errorf("hook.path %s is not the binary the DaemonSet installs (%s)", in.Config.Hook.Path, got)
	}
	for _, m := range inst.VolumeMounts {
		if want := "/host" + hostMount(t, ps, inst, m.MountPath); m.MountPath != want {
			t.Errorf("node directory mounted at %s, want %s (node-install.sh's defaults mirror the node under /host)", m.MountPath, want)
		}
	}
	for _, v := range ps.Volumes {
		if v.HostPath == nil {
			continue
		}
		if v.HostPath.Type != "DirectoryOrCreate" {
			t.Errorf("hostPath %s: type %q, want DirectoryOrCreate (a node without podman has neither directory)", v.HostPath.Path, v.HostPath.Type)
		}
		if v.HostPath.Path != binDir && v.HostPath.Path != hooksDir {
			t.Errorf("hostPath %s: the installer needs only %s and %s", v.HostPath.Path, binDir, hooksDir)
		}
	}
	if ps.HostPID || ps.HostNetwork || ps.HostIPC {
		t.Errorf("hostPID/hostNetwork/hostIPC set: the installer needs none")
	}

	// Least privilege: root for the root-owned directories, nothing else.
	for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
		sc := c.SecurityContext
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s is privileged", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", c.Name)
		}
		if !reflect.DeepEqual(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s: capabilities drop %q add %q, want drop ALL, add nothing", c.Name, sc.Capabilities.Drop, sc.Capabilities.Add)
		}
		if c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: no memory limit", c.Name)
		}
	}
	for _, c := range ps.Containers {
		if len(c.VolumeMounts) != 0 {
			t.Errorf("container %s mounts %v: only the installer needs the node's directories", c.Name, c.VolumeMounts)
		}
	}
	if len(ps.Containers) != 1 || !strings.Contains(ps.Containers[0].Image, "/pause:") {
		t.Errorf("want one pause container keeping the pod up, got %+v", ps.Containers)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: the pod talks to no API")
	}
	if ps.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector = %v, want kubernetes.io/os=linux", ps.NodeSelector)
	}
}

func TestKubernetesKustomization(t *testing.T) {
	// deploy/kubernetes applies base/ as it is.
	var top kustomization
	decodeStrict(t, filepath.Join(kubeDir, "kustomization.yaml"), &top)
	if top.Kind != "Kustomization" || !reflect.DeepEqual(top.Resources, []string{"base"}) ||
		len(top.Patches) != 0 || len(top.Images) != 0 || top.Namespace != "" {
		t.Errorf("deploy/kubernetes/kustomization.yaml = %+v, want base/ alone", top)
	}

	var k kustomization
	decodeStrict(t, filepath.Join(kubeBase, "kustomization.yaml"), &k)
	if k.Kind != "Kustomization" {
		t.Errorf("kind = %q", k.Kind)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(kubeBase, r)); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
	for _, want := range []string{"namespace.yaml", "daemonset.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("resources %q lack %s", k.Resources, want)
		}
	}

	var ns namespace
	decodeStrict(t, filepath.Join(kubeBase, "namespace.yaml"), &ns)
	if ns.Kind != "Namespace" || ns.Metadata.Name != k.Namespace || k.Namespace == "" {
		t.Errorf("namespace.yaml creates %s %q, the kustomization deploys into %q", ns.Kind, ns.Metadata.Name, k.Namespace)
	}
	// hostPath volumes are refused below the privileged Pod Security level.
	if got := ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("namespace pod-security.kubernetes.io/enforce = %q, want privileged (the installer mounts hostPath volumes)", got)
	}

	ds, _ := loadDaemonSet(t)
	img := ds.Spec.Template.Spec.InitContainers[0].Image
	if len(k.Images) != 1 || k.Images[0].Name != img {
		t.Errorf("images %+v: want one entry for the installer image %q, for `kustomize edit set image`", k.Images, img)
	}
}

// The overlays patch the base by index, guarded by a JSON-patch test op;
// applying them here checks that they hit the fields they mean to.
func TestKubernetesOverlays(t *testing.T) {
	tests := []struct {
		dir   string
		check func(t *testing.T, inst container)
	}{
		{"optin", func(t *testing.T, inst container) {
			if got := envOf(t, inst, "OKH_HOOK_JSON"); got != "/oci-keyring-hook-optin.json" {
				t.Errorf("OKH_HOOK_JSON = %q, want /oci-keyring-hook-optin.json", got)
			}
			if !reflect.DeepEqual(inst.Args, []string{"install"}) {
				t.Errorf("args = %q, want install", inst.Args)
			}
		}},
		{"uninstall", func(t *testing.T, inst container) {
			if !reflect.DeepEqual(inst.Args, []string{"uninstall"}) {
				t.Errorf("args = %q, want uninstall", inst.Args)
			}
			if got := envOf(t, inst, "OKH_HOOK_JSON"); got != "/oci-keyring-hook.json" {
				t.Errorf("OKH_HOOK_JSON = %q, want the base's", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			var k kustomization
			decodeStrict(t, filepath.Join(kubeDir, tc.dir, "kustomization.yaml"), &k)
			// An overlay inside the directory it builds on is a cycle
			// to kustomize: overlays and deploy/kubernetes share base/.
			if !reflect.DeepEqual(k.Resources, []string{"../base"}) {
				t.Errorf("resources = %q, want ../base", k.Resources)
			}
			base, tree := loadDaemonSet(t)
			if len(k.Patches) != 1 {
				t.Fatalf("want one patch, got %d", len(k.Patches))
			}
			p := k.Patches[0]
			if p.Target.Kind != "DaemonSet" || p.Target.Name != base.Metadata.Name {
				t.Errorf("patch targets %s %s, want DaemonSet %s", p.Target.Kind, p.Target.Name, base.Metadata.Name)
			}
			var ops []jsonPatchOp
			decodeStrictBytes(t, tc.dir+" patch", []byte(p.Patch), &ops)
			if len(ops) == 0 || ops[0].Op != "test" {
				t.Errorf("the patch does not start with a test op guarding its indexes: %+v", ops)
			}
			for _, op := range ops {
				if err := applyPatchOp(tree, op); err != nil {
					t.Fatalf("%+v: %v", op, err)
				}
			}
			b, err := yaml.Marshal(tree)
			if err != nil {
				t.Fatal(err)
			}
			var patched daemonSet
			decodeStrictBytes(t, tc.dir+" patched", b, &patched)
			tc.check(t, patched.Spec.Template.Spec.InitContainers[0])
		})
	}
}

// applyPatchOp applies a JSON-patch "test" or "replace" op to doc.
func applyPatchOp(doc map[string]any, op jsonPatchOp) error {
	parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
	var parent any = doc
	for _, p := range parts[:len(parts)-1] {
		next, err := child(parent, p)
		if err != nil {
			return err
		}
		parent = next
	}
	last := parts[len(parts)-1]
	cur, err := child(parent, last)
	if err != nil {
		return err
	}
	switch op.Op {
	case "test":
		if !reflect.DeepEqual(cur, op.Value) {
			return fmt.Errorf("test failed: %s is %v", op.Path, cur)
		}
	case "replace":
		switch p := parent.(type) {
		case map[string]any:
			p[last] = op.Value
		case []any:
			i, _ := strconv.Atoi(last)
			p[i] = op.Value
		}
	default:
		return fmt.Errorf("op %q not supported here", op.Op)
	}
	return nil
}

func child(node any, key string) (any, error) {
	switch n := node.(type) {
	case map[string]any:
		v, ok := n[key]
		if !ok {
			return nil, fmt.Errorf("no member %q", key)
		}
		return v, nil
	case []any:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(n) {
			return nil, fmt.Errorf("no index %q in a list of %d", key, len(n))
		}
		return n[i], nil
	}
	return nil, fmt.Errorf("cannot index %T with %q", node, key)
}

// The image holds what the DaemonSet's installer reads, built by make
// install with PREFIX=/usr.
func TestKubernetesDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(kubeDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"ARG PREFIX=/usr\n",
		`make install PREFIX="$PREFIX"`,
		`make install-optin PREFIX="$PREFIX"`,
		"/image/oci-keyring-hook;",
		"/image/oci-keyring-hook.json;",
		"/image/oci-keyring-hook-optin.json;",
		"deploy/kubernetes/node-install.sh /image/node-install.sh",
		"COPY --from=build /image/ /\n",
		`ENTRYPOINT ["/node-install.sh"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	ds, _ := loadDaemonSet(t)
	inst := ds.Spec.Template.Spec.InitContainers[0]
	for _, name := range []string{"OKH_BINARY", "OKH_HOOK_JSON"} {
		if v := envOf(t, inst, name); !strings.Contains(df, "/image"+v+";") {
			t.Errorf("%s=%s is not a file of the image", name, v)
		}
	}
}

// node-install.sh, run by sh against a stand-in node root, installs the
// same bytes make install does, switches variants, and uninstalls.
func TestNodeInstallScript(t *testing.T) {
	sh := testutil.RequiresCommand(t, "sh")
	always := makeInstall(t, "install", "/usr", t.TempDir())
	optin := makeInstall(t, "install-optin", "/usr", t.TempDir())
	ds, _ := loadDaemonSet(t)
	inst := ds.Spec.Template.Spec.InitContainers[0]

	node := t.TempDir() // stands for the container's /
	binDir := filepath.Join(node, envOf(t, inst, "OKH_BINDIR"))
	hooksDir := filepath.Join(node, envOf(t, inst, "OKH_HOOKSDIR"))
	script := filepath.Join(kubeDir, "node-install.sh")
	run := func(jsonSrc *Installed, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(sh, append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(),
			"OKH_BINARY="+filepath.Join(always.DestDir, always.Binary),
			"OKH_HOOK_JSON="+filepath.Join(jsonSrc.DestDir, jsonSrc.HooksD),
			"OKH_BINDIR="+binDir,
			"OKH_HOOKSDIR="+hooksDir,
		)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &ee):
			return string(out), ee.ExitCode()
		}
		t.Fatalf("running %s: %v", script, err)
		return "", -1
	}
	// want compares the node with what make install wrote: the binary of
	// always and the hooks.d file of jsonSrc.
	want := func(jsonSrc *Installed) {
		t.Helper()
		got := regularFiles(t, filepath.Join(node, "host"))
		exp := []string{always.Binary, jsonSrc.HooksD}
		slices.Sort(got)
		slices.Sort(exp)
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("node has %q, want %q", got, exp)
		}
		for _, src := range []struct{ file, destdir string }{
			{always.Binary, always.DestDir},
			{jsonSrc.HooksD, jsonSrc.DestDir},
		} {
			nodeFile := filepath.Join(node, "host", src.file)
			makeFile := filepath.Join(src.destdir, src.file)
			a, err := os.ReadFile(nodeFile)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(makeFile)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs from %s", nodeFile, makeFile)
			}
			fa, errA := os.Stat(nodeFile)
			fb, errB := os.Stat(makeFile)
			if errA != nil || errB != nil {
				t.Fatal(errors.Join(errA, errB))
			}
			if fa.Mode() != fb.Mode() {
				t.Errorf("%s: mode %v, make install gives %v", nodeFile, fa.Mode(), fb.Mode())
			}
		}
	}

	// The directories do not exist: the installer does not create them
	// (kubelet does, for DirectoryOrCreate), and refuses to start.
	if out, code := run(always, "install"); code != 1 || !strings.Contains(out, "not a directory") {
		t.Errorf("install without the node's directories: exit %d, want 1\n%s", code, out)
	}
	for _, d := range []string{binDir, hooksDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := run(always, "install"); code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	want(always)
	if out, code := run(always, "install"); code != 0 { // again, as after a pod restart
		t.Fatalf("second install: exit %d\n%s", code, out)
	}
	want(always)
	if out, code := run(optin, "install"); code != 0 {
		t.Fatalf("install of the opt-in file: exit %d\n%s", code, out)
	}
	want(optin) // the opt-in file replaced the always one

	if out, code := run(always, "uninstall"); code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out)
	}
	if files := regularFiles(t, node); len(files) != 0 {
		t.Errorf("uninstall left %q", files)
	}
	if out, code := run(always, "uninstall"); code != 0 {
		t.Errorf("uninstall of nothing: exit %d, want 0\n%s", code, out)
	}
	if out, code := run(always, "remove"); code != 2 {
		t.Errorf("unknown action: exit %d, want 2\n%s", code, out)
	}

	// A missing source file changes nothing on the node.
	missing := &Installed{DestDir: t.TempDir(), HooksD: "/nope.json"}
	if out, code := run(missing, "install"); code != 1 || !strings.Contains(out, "no such file") {
		t.Errorf("install of a missing file: exit %d, want 1\n%s", code, out)
	}
	if files := regularFiles(t, node); len(files) != 0 {
		t.Errorf("a failed install left %q", files)
	}
}
