#!/usr/bin/env bash
# test-arm64.sh: run the injection tests on a real arm64 kernel under
# qemu-system-aarch64 (TCG emulation; no arm64 hardware needed).
#
# Builds the keyring (and hook) test binaries for GOARCH=arm64, the
# single-threaded C stand-in with aarch64-linux-gnu-gcc (static), and a
# tiny Go /init (hack/arm64/init); packs them into a newc initramfs; boots
# Debian's arm64 cloud kernel on it; and fails unless the VM's result line
# says every test passed and none failed or skipped (CI=true inside the VM,
# so a missing prerequisite fails instead of skipping).
#
# Usage: hack/test-arm64.sh        (or: make test-arm64)
# Needs: qemu-system-aarch64 (qemu-system-arm), cpio, gzip,
#        aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross).
#        .ci/run installs them. The kernel, busybox and setpriv come from
#        Debian's arm64 packages, fetched with apt-get download (adding the
#        arm64 architecture to dpkg if needed: root) and cached.
# Env:   GO=go                      Go toolchain
#        OKH_ARM64_DIR=bin/arm64    build and download cache (gitignored)
#        OKH_ARM64_KERNEL=PATH      use this arm64 kernel Image instead
#        OKH_ARM64_KERNEL_PKG=NAME  Debian kernel package (default: what
#                                   linux-image-cloud-arm64 depends on)
#        OKH_ARM64_RUN=REGEXP       -test.run inside the VM (default: all)
#        OKH_ARM64_PKGS="keyring hook"  packages whose tests run in the VM
#        OKH_ARM64_TIMEOUT=900      seconds before the VM is killed
#        OKH_ARM64_CPU=cortex-a57   OKH_ARM64_SMP=2   OKH_ARM64_MEM=1024
#        OKH_ARM64_VERBOSE=1        copy the whole console to stdout (it is
#                                   always in $OKH_ARM64_DIR/console.log)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
DIR=${OKH_ARM64_DIR:-bin/arm64}
PKGS=${OKH_ARM64_PKGS:-keyring hook}
TIMEOUT=${OKH_ARM64_TIMEOUT:-900}
CPU=${OKH_ARM64_CPU:-cortex-a57}
SMP=${OKH_ARM64_SMP:-2}
MEM=${OKH_ARM64_MEM:-1024}
CC_ARM64=${CC_ARM64:-aarch64-linux-gnu-gcc}

say() { echo "==> test-arm64: $*"; }
die() { echo "test-arm64: $*" >&2; exit 1; }

for tool in qemu-system-aarch64 cpio gzip "$CC_ARM64"; do
	command -v "$tool" >/dev/null ||
		die "$tool not found; on Debian: apt-get install qemu-system-arm cpio gzip gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# --- Debian arm64 packages, downloaded once and unpacked under $DIR/deb -----
arm64_apt() {
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		[[ $(id -u) -eq 0 ]] || die "dpkg lacks the arm64 architecture; as root: dpkg --add-architecture arm64 && apt-get update"
		say "adding the arm64 architecture to dpkg"
		dpkg --add-architecture arm64
		apt-get -o DPkg::Lock::Timeout=300 update -qq
	fi
}
# fetch PKG: unpack PKG:arm64 into $DIR/deb/PKG unless already there.
fetch() {
	local d=$DIR/deb/$1
	[[ -f $d/.done ]] && return 0
	arm64_apt
	say "downloading $1:arm64"
	rm -rf "$DIR/dl" "$d"
	mkdir -p "$DIR/dl" "$d"
	# apt's sandbox user may not write here; download as we are.
	(cd "$DIR/dl" && apt-get download -o APT::Sandbox::User=root "$1:arm64" >/dev/null)
	dpkg-deb -x "$DIR"/dl/*.deb "$d"
	rm -rf "$DIR/dl"
	touch "$d/.done"
}

# The kernel: Debian's arm64 cloud kernel.
kernel=${OKH_ARM64_KERNEL:-}
if [[ -z $kernel ]]; then
	arm64_apt
	pkg=${OKH_ARM64_KERNEL_PKG:-}
	if [[ -z $pkg ]]; then
		dep() { apt-cache depends linux-image-cloud-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-/ {sub(":arm64", "", $2); print $2; exit}'; }
		pkg=$(dep)
		if [[ -z $pkg ]]; then
			[[ $(id -u) -eq 0 ]] || die "apt knows no linux-image-cloud-arm64:arm64; run apt-get update"
			apt-get -o DPkg::Lock::Timeout=300 update -qq
			pkg=$(dep)
		fi
		[[ -n $pkg ]] || die "cannot find Debian's arm64 cloud kernel package (apt-cache depends linux-image-cloud-arm64:arm64)"
		# The -unsigned package holds the same Image without the EFI
		# signature, and is what the signed one is made from.
		if apt-cache show "$pkg-unsigned:arm64" >/dev/null 2>&1; then
			pkg=$pkg-unsigned
		fi
	fi
	fetch "$pkg"
	rm -rf "$DIR/deb/$pkg/lib" "$DIR/deb/$pkg/usr" # modules: ~150 MB unused
	kernel=$(ls "$DIR/deb/$pkg"/boot/vmlinuz-* | head -1)
fi
[[ -f $kernel ]] || die "no kernel at $kernel"

# --- the initramfs ----------------------------------------------------------
root=$DIR/root
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,okh}
say "building arm64 binaries"
GOARCH=arm64 CGO_ENABLED=0 "$GO" build -trimpath -o "$root/init" ./hack/arm64/init
for p in $PKGS; do
	GOARCH=arm64 CGO_ENABLED=0 "$GO" test -c -o "$root/okh/$p.test" "./$p"
done
# The commands the tests run: sh, sleep, true from a static busybox;
# util-linux's setpriv (busybox's lacks --reuid and --bounding-set) with the
# two libraries it links.
for p in busybox-static util-linux libc6 libcap-ng0; do fetch "$p"; done
cp "$DIR/deb/busybox-static/bin/busybox" "$root/bin/busybox"
for app in sh sleep cat ls ps true false; do ln -s busybox "$root/bin/$app"; done
cp "$DIR/deb/util-linux/usr/bin/setpriv" "$root/bin/setpriv"
mkdir -p "$root/lib/aarch64-linux-gnu"
cp -L "$DIR"/deb/libc6/lib/aarch64-linux-gnu/{ld-linux-aarch64.so.1,libc.so.6} \
	"$DIR/deb/libcap-ng0/lib/aarch64-linux-gnu/libcap-ng.so.0" "$root/lib/aarch64-linux-gnu/"
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$root/lib/ld-linux-aarch64.so.1"
if [[ " $PKGS " == *" hook "* ]]; then
	# hook's tests run the hook binary itself; there is no go in the VM.
	GOARCH=arm64 CGO_ENABLED=0 "$GO" build -trimpath -o "$root/bin/oci-keyring-hook" ./hook
	echo "OKH_HOOK_BINARY=/bin/oci-keyring-hook" >>"$root/okh/env"
	# Not here: tests of the docs and of version stamping need the source
	# tree and the go toolchain, and nothing in them depends on the
	# architecture (make test runs them).
	echo "-test.skip=^(TestManPage|TestVersionFrom)" >"$root/okh/hook.flags"
fi
"$CC_ARM64" -static -O2 -Wall -o "$root/bin/standin" test/standin/testdata/standin.c
{
	echo "-test.count=1"
	echo "-test.timeout=$((TIMEOUT - 60))s"
	if [[ -n ${OKH_ARM64_RUN:-} ]]; then echo "-test.run=$OKH_ARM64_RUN"; fi
} >"$root/okh/flags"
if [[ $(id -u) -eq 0 ]]; then
	mknod -m 600 "$root/dev/console" c 5 1
fi
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$DIR/initrd.gz"

# --- boot -------------------------------------------------------------------
# The console goes to $log; with OKH_ARM64_VERBOSE=1 to stdout as well,
# otherwise only init's progress lines, and the whole console on failure.
log=$DIR/console.log
say "booting $(basename "$kernel") on qemu-system-aarch64 -cpu $CPU -smp $SMP -m $MEM (timeout ${TIMEOUT}s)"
show() {
	if [[ ${OKH_ARM64_VERBOSE:-0} == 1 ]]; then cat; else grep -a --line-buffered -E '^(init:|OKH-ARM64-RESULT:|--- FAIL|panic:|Kernel panic)' || true; fi
}
start=$(date +%s)
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-aarch64 \
	-M virt -cpu "$CPU" -smp "$SMP" -m "$MEM" \
	-nographic -no-reboot -nic none \
	-kernel "$kernel" -initrd "$DIR/initrd.gz" \
	-append "console=ttyAMA0 rdinit=/init panic=-1 quiet" \
	</dev/null 2>&1 | tr -d '\r' | tee "$log" | show
rc=${PIPESTATUS[0]}
set -e
took=$(($(date +%s) - start))
say "qemu exited $rc after ${took}s; console in $log"

failed() {
	[[ ${OKH_ARM64_VERBOSE:-0} == 1 ]] || { echo "---- console ----"; cat "$log"; echo "---- end of console ----"; } >&2
	grep -a -E '^\s*--- (FAIL|SKIP):' "$log" >&2 || true
	die "$@"
}
[[ $rc -ne 124 && $rc -ne 137 ]] || failed "the VM did not finish within ${TIMEOUT}s"
result=$(grep -a '^OKH-ARM64-RESULT:' "$log" | tail -1 || true)
[[ -n $result ]] || failed "no OKH-ARM64-RESULT line on the console (qemu exit $rc)"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
status=$(field status) pass=$(field pass) fail=$(field fail) skip=$(field skip)
if [[ $status != ok || $fail != 0 || $skip != 0 || ${pass:-0} -eq 0 ]]; then
	echo "arm64: ${pass:-0} passed, ${fail:-0} failed, ${skip:-0} skipped"
	failed "arm64 tests did not all pass: $result"
fi
say "every arm64 test passed; the VM ran ${took}s"
echo "arm64: $pass passed, $fail failed, $skip skipped"
