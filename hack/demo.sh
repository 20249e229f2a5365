#!/usr/bin/env bash
# demo.sh: show what oci-keyring-hook changes, in one minute, as root.
#
# Runs the same container twice under `runc --no-new-keyring` (what containerd's
# NoNewKeyring and podman's keyring=false do): once without the hook, once with
# it at prestart. A tiny static probe inside the container prints the session
# keyring it really has. No image is pulled: the rootfs holds only the probe.
#
# Usage: sudo hack/demo.sh        (or: make demo)
# Env:   GO=/path/to/go  RUNC=runc  KEEP=1 (keep the work directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "demo.sh: run me as root (the hook ptraces the container's init)" >&2
	exit 1
fi

RUNC=${RUNC:-runc}
if ! command -v "$RUNC" >/dev/null; then
	echo "==> installing runc"
	apt-get update
	apt-get install -y runc
fi
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
if [[ ! -x $GO ]]; then
	echo "demo.sh: no Go toolchain found; set GO=/path/to/go" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/oci-keyring-hook-demo.XXXXXX")
chmod 755 "$work"
state=$work/state
ids=()
cleanup() {
	for id in "${ids[@]}"; do
		"$RUNC" --root "$state" delete -f "$id" >/dev/null 2>&1 || true
	done
	if [[ -n ${KEEP:-} ]]; then
		echo "(kept $work)"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

echo "==> building the hook and the probe"
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -o "$work/oci-keyring-hook" ./hook
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -o "$work/probe" ./test/probe

echo "==> making a throwaway rootfs in $work/rootfs"
mkdir -p "$work/rootfs"/{proc,dev,sys,tmp}
cp "$work/probe" "$work/rootfs/probe"

# write_bundle DIR HOOKS_JSON: an OCI bundle running `/probe show` on the
# shared read-only rootfs, in the namespaces `runc spec` uses, without seccomp.
write_bundle() {
	mkdir -p "$1"
	cat >"$1/config.json" <<EOF
{
	"ociVersion": "1.0.2",
	"process": {
		"terminal": false,
		"user": { "uid": 0, "gid": 0 },
		"args": [ "/probe", "show", "-format", "fields" ],
		"env": [ "PATH=/usr/bin:/bin" ],
		"cwd": "/",
		"noNewPrivileges": true
	},
	"root": { "path": "$work/rootfs", "readonly": true },
	"hostname": "demo",
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
		{ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [ "nosuid", "noexec", "nodev", "ro" ] }
	],
	"hooks": $2,
	"linux": {
		"namespaces": [ { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" } ]
	}
}
EOF
}

# run_container ID BUNDLE: prints "serial perm type name" of the container's @s.
run_container() {
	"$RUNC" --root "$state" run --no-new-keyring --bundle "$2" "$1"
}

hook_log=$work/hook.log
write_bundle "$work/plain" '{}'
write_bundle "$work/hooked" "{ \"prestart\": [ { \"path\": \"$work/oci-keyring-hook\", \"args\": [ \"oci-keyring-hook\", \"--log-format\", \"text\", \"--log-file\", \"$hook_log\", \"prestart\" ], \"timeout\": 10 } ] }"

echo "==> running the container without and with the hook"
plain_id=okh-demo-$$-plain
hooked_id=okh-demo-$$-hooked
ids=("$plain_id" "$hooked_id")
host_out=$("$work/probe" show -format fields)
plain_out=$(run_container "$plain_id" "$work/plain")
hooked_out=$(run_container "$hooked_id" "$work/hooked")
read -r h_serial h_perm _ h_name <<<"$host_out"
read -r p_serial p_perm _ p_name <<<"$plain_out"
read -r k_serial k_perm _ k_name <<<"$hooked_out"

echo
printf '%-44s %-11s %-11s %s\n' "session keyring (@s) of" serial perm name
printf '%-44s %-11s %-11s %s\n' "this shell (the host)" "$h_serial" "$h_perm" "$h_name"
printf '%-44s %-11s %-11s %s\n' "container, runc --no-new-keyring" "$p_serial" "$p_perm" "$p_name"
printf '%-44s %-11s %-11s %s\n' "container, runc --no-new-keyring + the hook" "$k_serial" "$k_perm" "$k_name"
echo
echo "Without the hook the container shares the host's session keyring (same serial) and"
echo "every key in it; with the hook it gets a fresh private one, named after the container,"
echo "that only its own processes possess (perm $k_perm: no search, nobody can join it by name)."
echo
echo "hook log ($hook_log):"
cat "$hook_log"

if [[ $p_serial != "$h_serial" || $k_serial == "$h_serial" ]]; then
	echo "demo.sh: unexpected result (see the table above)" >&2
	exit 1
fi
