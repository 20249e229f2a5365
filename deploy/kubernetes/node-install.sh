#!/bin/sh
# node-install.sh: put oci-keyring-hook and its hooks.d file on a node, or
# take them off. The DaemonSet of base/ runs it in an init container
# with the node's directories mounted; the files it copies are those
# `make install PREFIX=/usr` produces (see Dockerfile).
#
# Usage: node-install.sh install|uninstall
#
# Environment (defaults in brackets):
#   OKH_BINARY    the hook binary to install        [/oci-keyring-hook]
#   OKH_HOOK_JSON the hooks.d file to install       [/oci-keyring-hook.json]
#                 (/oci-keyring-hook-optin.json: only annotated containers)
#   OKH_BINDIR    the node's binary directory       [/host/usr/libexec/oci/hooks.d]
#   OKH_HOOKSDIR  the node's hooks.d directory      [/host/usr/share/containers/oci/hooks.d]
#
# Each file is copied under a temporary name in its target directory and
# renamed into place, so that a runtime reading the directory never sees a
# partial file. install writes the binary before the hooks.d file that names
# it; uninstall removes the hooks.d file first.
set -eu

binary=${OKH_BINARY:-/oci-keyring-hook}
hook_json=${OKH_HOOK_JSON:-/oci-keyring-hook.json}
bindir=${OKH_BINDIR:-/host/usr/libexec/oci/hooks.d}
hooksdir=${OKH_HOOKSDIR:-/host/usr/share/containers/oci/hooks.d}

tmp=
cleanup() {
	if [ -n "$tmp" ]; then
		rm -f "$tmp"
	fi
}
trap cleanup EXIT

# put SRC DIR NAME MODE: install SRC as DIR/NAME with MODE, atomically.
# The temporary name does not end in .json: hooks.d readers ignore it.
put() {
	tmp="$2/.$3.tmp.$$"
	cp "$1" "$tmp"
	chmod "$4" "$tmp"
	mv -f "$tmp" "$2/$3"
	tmp=
}

need_dir() {
	if [ ! -d "$1" ]; then
		echo "node-install.sh: $1 is not a directory (is the host path mounted?)" >&2
		exit 1
	fi
}

case ${1:-} in
install)
	need_dir "$bindir"
	need_dir "$hooksdir"
	for f in "$binary" "$hook_json"; do
		if [ ! -f "$f" ]; then
			echo "node-install.sh: $f: no such file" >&2
			exit 1
		fi
	done
	put "$binary" "$bindir" oci-keyring-hook 0755
	put "$hook_json" "$hooksdir" oci-keyring-hook.json 0644
	echo "node-install.sh: installed $bindir/oci-keyring-hook and $hooksdir/oci-keyring-hook.json (from $hook_json)"
	;;
uninstall)
	need_dir "$bindir"
	need_dir "$hooksdir"
	rm -f "$hooksdir/oci-keyring-hook.json"
	rm -f "$bindir/oci-keyring-hook"
	echo "node-install.sh: removed $hooksdir/oci-keyring-hook.json and $bindir/oci-keyring-hook"
	;;
*)
	echo "usage: node-install.sh install|uninstall" >&2
	exit 2
	;;
esac
