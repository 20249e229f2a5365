#!/usr/bin/env bash
# bench.sh: what oci-keyring-hook adds to a container start (make bench).
#
# Builds the hook, the floor program (hack/bench/floor), the driver
# (hack/bench) and the keyring test binary in a temporary directory, then
# prints one table (docs/benchmarks.md shows one and how to read it):
#
#   1. the install algorithm in a stand-in init, per container:
#      go test -bench Inject ./keyring (attach+stop, remote calls,
#      restore+detach, allocations);
#   2. the hook process from stdin to exit on a stand-in init, against a
#      static Go binary that makes two keyctl calls (alternating);
#   3. `runc run` of a static Go binary: --no-new-keyring with the hook, with
#      a no-op /bin/true hook, and runc's own keyring without a hook
#      (alternating).
#
# Usage: sudo hack/bench.sh            (or: make bench)
# Env:   BENCH_SMOKE=1          a short run that only checks that everything works (CI)
#        BENCH_RUNS=N           hook and floor runs, each (default 60)
#        BENCH_CONTAINER_RUNS=N container starts per variant (default 40)
#        BENCH_INJECT=N         iterations of each install benchmark (default 2000)
#        BENCH_COUNT=N          repetitions of the install benchmarks (default 5)
#        BENCH_STAGE=STAGE      createRuntime (default) or prestart
#        BENCH_OUT=FILE         also write the table to FILE
#        GO=/path/to/go  RUNC=runc
# Take figures on a quiet machine: the table prints the load average.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh: run me as root (the hook ptraces its target; runc needs root)" >&2
	exit 1
fi
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
RUNC=${RUNC:-runc}
if ! command -v "$RUNC" >/dev/null; then
	echo "bench.sh: $RUNC not found (apt-get install runc; .ci/run does)" >&2
	exit 1
fi

if [[ -n ${BENCH_SMOKE:-} ]]; then
	runs=5 cruns=3 inject=50 count=1
else
	runs=60 cruns=40 inject=2000 count=5
fi
runs=${BENCH_RUNS:-$runs}
cruns=${BENCH_CONTAINER_RUNS:-$cruns}
inject=${BENCH_INJECT:-$inject}
count=${BENCH_COUNT:-$count}
stage=${BENCH_STAGE:-createRuntime}

work=$(mktemp -d "${TMPDIR:-/tmp}/oci-keyring-hook-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "==> building the hook, the floor program, the driver and the keyring benchmarks" >&2
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags '-s -w' -o "$work/oci-keyring-hook" ./hook
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -ldflags '-s -w' -o "$work/floor" ./hack/bench/floor
"$GO" build -buildvcs=false -o "$work/bench" ./hack/bench
"$GO" test -c -o "$work/keyring.test" ./keyring

echo "==> install algorithm: go test -bench Inject ./keyring (${inject}x, count $count)" >&2
(cd keyring && "$work/keyring.test" -test.run '^$' -test.bench Inject -test.benchmem \
	-test.benchtime "${inject}x" -test.count "$count") | tee "$work/inject.txt" >&2

echo "==> hook process ($runs runs each) and container start ($cruns runs each)" >&2
echo >&2
"$work/bench" -hook "$work/oci-keyring-hook" -floor "$work/floor" -inject "$work/inject.txt" \
	-runs "$runs" -container-runs "$cruns" -runc "$RUNC" -stage "$stage" | tee "${BENCH_OUT:-/dev/null}"
