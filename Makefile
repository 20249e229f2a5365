# oci-keyring-hook — build, test and install.
#
#   make build     bin/oci-keyring-hook, static (CGO_ENABLED=0)
#   make test      vet, arm64 cross-compile, unit + stand-in + end-to-end tests (root)
#   make demo      a container under runc --no-new-keyring without and with the hook
#   make fuzz      every fuzz target, FUZZTIME each (default 10s)
#   make bench     what the hook adds to a container start (root; BENCH_SMOKE=1 for a quick check)
#   make test-arm64  keyring and hook tests on an arm64 kernel under qemu (hack/test-arm64.sh)
#   make install   the binary and a hooks.d file for every container (PREFIX=/usr DESTDIR=)
#   make install-optin   the same, with a hooks.d file for annotated containers only
#   make uninstall PREFIX=/usr DESTDIR=

GO       ?= go
PREFIX   ?= /usr
DESTDIR  ?=
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN      := bin/oci-keyring-hook
HOOKDIR  := $(PREFIX)/libexec/oci/hooks.d
# The hooks.d directory podman and CRI-O read by default (oci-hooks(5)).
HOOKJSONDIR := $(PREFIX)/share/containers/oci/hooks.d

.PHONY: all build test test-arm64 vet cross unit demo bench fuzz clean install install-optin uninstall

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./hook

# Formatting and vet on the host architecture, and the whole module built
# and vetted for arm64 (its register code is unit-tested on amd64 too).
vet:
	@out="$$(gofmt -l hook keyring spec test)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

cross:
	GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...
	GOARCH=arm64 $(GO) vet ./...
	GOARCH=arm64 $(GO) test -c -o /dev/null ./keyring

# Root-only tests skip outside CI and fail in CI (CI=true) when a
# prerequisite (root, runc, crun, cc) is missing.
test: vet cross
	$(GO) test -count=1 -timeout 20m ./...

# Quick loop while developing: no end-to-end tests (root ones still skip
# without root outside CI).
unit:
	$(GO) test -count=1 ./spec/ ./keyring/ ./hook/

demo:
	hack/demo.sh

# Runs every fuzz target (func FuzzXxx in a _test.go file) of the packages
# below for FUZZTIME each, one after the other: go test fuzzes one target of
# one package at a time. Seed corpora are in <pkg>/testdata/fuzz/FuzzXxx/;
# an input that fails is written there too, so it joins the seeds that
# make test runs.
FUZZTIME ?= 10s
FUZZPKGS := spec keyring
fuzz:
	@set -e; for pkg in $(FUZZPKGS); do \
	  for fn in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | cut -d' ' -f2); do \
	    echo "== $$fn ./$$pkg ($(FUZZTIME))"; \
	    $(GO) test -run XXX -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	  done; \
	done

# The install algorithm per container, the hook process against a static Go
# binary, and runc container starts with the hook, a no-op hook and none
# (hack/bench.sh; docs/benchmarks.md). As root. BENCH_SMOKE=1 makes a short
# run that checks it all works; BENCH_RUNS, BENCH_CONTAINER_RUNS,
# BENCH_INJECT and BENCH_COUNT set the number of runs.
bench:
	GO=$(GO) hack/bench.sh

# The keyring and hook tests, built for arm64, run as root with CI=true on
# Debian's arm64 kernel under qemu-system-aarch64 (TCG); fails unless every
# test passed. Kernel and busybox are downloaded once into bin/arm64.
test-arm64:
	GO=$(GO) hack/test-arm64.sh

# install puts the binary in $(HOOKDIR) and a hooks.d file that runs it for
# every container in $(HOOKJSONDIR); install-optin puts instead one that runs
# it only for containers carrying the io.oci-keyring-hook.mode annotation.
# Both write oci-keyring-hook.json, so the later one wins. The hooks.d file is
# generated from hack/hooks.d/*.json.in with its path set to $(HOOKDIR),
# without DESTDIR. Files are written under a temporary name and renamed, the
# binary first, so a runtime reading the directories never sees a partial
# file nor a hooks.d file naming a missing binary.
install: build
	$(call install-hook,hack/hooks.d/oci-keyring-hook.json.in)

install-optin: build
	$(call install-hook,hack/hooks.d/oci-keyring-hook-optin.json.in)

define install-hook
	install -d -m 0755 '$(DESTDIR)$(HOOKDIR)' '$(DESTDIR)$(HOOKJSONDIR)'
	install -m 0755 '$(BIN)' '$(DESTDIR)$(HOOKDIR)/.oci-keyring-hook.tmp'
	mv -f '$(DESTDIR)$(HOOKDIR)/.oci-keyring-hook.tmp' '$(DESTDIR)$(HOOKDIR)/oci-keyring-hook'
	sed 's|@HOOKDIR@|$(HOOKDIR)|g' '$(1)' > '$(DESTDIR)$(HOOKJSONDIR)/.oci-keyring-hook.json.tmp'
	chmod 0644 '$(DESTDIR)$(HOOKJSONDIR)/.oci-keyring-hook.json.tmp'
	mv -f '$(DESTDIR)$(HOOKJSONDIR)/.oci-keyring-hook.json.tmp' '$(DESTDIR)$(HOOKJSONDIR)/oci-keyring-hook.json'
endef

# The hooks.d file first, so runtimes stop adding the hook before its binary
# goes (a container created meanwhile still runs the binary its config names).
uninstall:
	rm -f '$(DESTDIR)$(HOOKJSONDIR)/oci-keyring-hook.json'
	rm -f '$(DESTDIR)$(HOOKDIR)/oci-keyring-hook'

clean:
	rm -rf bin
