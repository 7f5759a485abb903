# Thin wrapper around CMake. The two commands a newcomer needs:
#   make run    build, then run the demo
#   make test   build release and sanitizer (ASan+UBSan) trees, run all tests
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
MAKEFLAGS += --no-print-directory

# Debian packages the build needs; any llvm-N-dev with N >= 14 will do.
# g++ and zlib1g-dev: linking LLVM's static archives (MFX_LLVM_STATIC, the GPU pack).
PACKAGES := check libsqlite3-dev libopenblas-dev libcjson-dev pkg-config \
            python3-numpy python3-pytest python3-torch cmake libopenmpi-dev openmpi-bin \
            g++ zlib1g-dev
LLVM_PACKAGE := llvm-14-dev

LSAN_SUPP := $(CURDIR)/tests/lsan.supp
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                 $(if $(wildcard $(LSAN_SUPP)),LSAN_OPTIONS=suppressions=$(LSAN_SUPP))

.PHONY: all deps build build-asan test run clean

all: build

# One dpkg-query; installs what is missing when we can, else says how.
deps:
	@installed=$$(dpkg-query -W -f='$${db:Status-Abbrev} $${Package}\n' \
	    $(PACKAGES) 'llvm-*-dev' 2>/dev/null | awk '$$1 == "ii" { print $$2 }'); \
	missing=""; \
	for p in $(PACKAGES); do \
	  echo "$$installed" | grep -qx "$$p" || missing="$$missing $$p"; \
	done; \
	echo "$$installed" | grep -Eqx 'llvm-(1[4-9]|[2-9][0-9])-dev' || missing="$$missing $(LLVM_PACKAGE)"; \
	[ -z "$$missing" ] && exit 0; \
	echo "mfx: missing Debian packages:$$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else \
	  echo "mfx: install them with: sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	$$sudo apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

# Debug info with -O1: the sanitizers stay fast enough for every test.
build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
	      -DMFX_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)

test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(ASAN_BUILD) && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS)

run: build
	$(BUILD)/bin/mfx demo

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
