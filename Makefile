# Tollgate - thin wrapper over CMake, apt and npm.
#   make run    install what is missing, build, migrate and serve on 127.0.0.1:8081
#   make test   install what is missing and run every test (the style checks, unit, e2e, crash,
#               then unit and e2e under ASan+UBSan, then the fuzz targets)
#   make check-style  lines over 100 columns, clang-format differences, include cycles
#   make bench  benchmarks (not part of make test)
#   make crash  the full crash test: 20 rounds of kill -9 under load (make test runs 5)

SHELL := /bin/bash
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
E2E := tests/e2e

APT_PACKAGES := build-essential cmake pkg-config libcivetweb-dev libsqlite3-dev libcjson-dev \
	libsodium-dev libcurl4-openssl-dev libcmocka-dev sqlite3 curl chromium nodejs npm \
	libpq-dev postgresql \
	clang libclang-rt-14-dev clang-format libssl-dev openssl nginx-light
BENCH_PACKAGES := nginx-light
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deps-apt deps-bench deps-npm build build-asan run check-style test test-unit test-e2e test-crash test-asan test-fuzz fuzz crash bench clean

all: build

deps: deps-apt deps-npm

# apt_install PACKAGES: install only the Debian packages that are missing
# (dpkg-query is fast and offline).
define apt_install
	@missing=""; for p in $(1); do \
		if [ "$$p" = nodejs ] || [ "$$p" = npm ]; then command -v $${p/nodejs/node} >/dev/null 2>&1 && continue; fi; \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps-apt:
	$(call apt_install,$(APT_PACKAGES))

# nginx is the benchmark's reference event-driven proxy (tests/bench/README.md).
deps-bench:
	$(call apt_install,$(BENCH_PACKAGES))

# Pinned test packages from the lockfile; reinstalled only when the lockfile changes.
deps-npm: $(E2E)/node_modules/.installed
$(E2E)/node_modules/.installed: $(E2E)/package.json $(E2E)/package-lock.json
	cd $(E2E) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DTG_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps-apt $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DTG_WERROR=ON -DTG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

build-asan: deps-apt $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)

run: build
	./$(BUILD)/tollgate serve

# docs/CODE_STYLE.md: line length, clang-format (.clang-format), include cycles.
check-style: deps-apt
	scripts/check-style.sh

test-unit: build
	cd $(BUILD) && ctest --output-on-failure
	bash tests/fake_upstream/selftest.sh $(BUILD)/fake_upstream

# The edge suites hold thousands of sockets: lift the soft descriptor limit.
test-e2e: build deps-npm
	ulimit -n $$(ulimit -Hn) && cd $(E2E) && TOLLGATE_BIN=$(CURDIR)/$(BUILD)/tollgate FAKE_UPSTREAM_BIN=$(CURDIR)/$(BUILD)/fake_upstream \
		node --test --test-concurrency=1 --test-reporter=spec .

# kill -9 under load, restart, check the books (tests/crash/README.md); 5 rounds here.
test-crash: build
	CRASH_ROUNDS=$${CRASH_ROUNDS:-5} tests/crash/run.sh $(BUILD)

test-asan: build-asan deps-npm
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure
	ulimit -n $$(ulimit -Hn) && cd $(E2E) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		TOLLGATE_BIN=$(CURDIR)/$(ASAN_BUILD)/tollgate FAKE_UPSTREAM_BIN=$(CURDIR)/$(ASAN_BUILD)/fake_upstream \
		node --test --test-concurrency=1 --test-reporter=spec .

# Every libFuzzer target (clang, ASan, UBSan) for a few seconds: a regression check.
test-fuzz: deps-apt
	FUZZ_JOBS=2 tests/fuzz/run.sh build-fuzz 5

# Every target for 60 s (issue-sized runs; not part of make test).
fuzz: deps-apt
	FUZZ_JOBS=2 tests/fuzz/run.sh build-fuzz 60

test: deps
	$(MAKE) check-style
	$(MAKE) test-unit
	$(MAKE) test-e2e
	$(MAKE) test-crash
	$(MAKE) test-asan
	$(MAKE) test-fuzz
	@echo "make test: all suites passed"

# Every round of the crash test (20 unless CRASH_ROUNDS says otherwise; not part of make test).
crash: build
	tests/crash/run.sh $(BUILD)

bench: build deps-bench
	tests/bench/run.sh $(BUILD)
	tests/bench/pages.sh $(BUILD)
	tests/bench/edge.sh $(BUILD)
	tests/bench/scale.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
