# Thin wrapper around CMake. The two commands a newcomer needs:
#   make run    build, then run the demo
#   make test   build release and sanitizer (ASan+UBSan) trees, run all tests,
#               and run each fuzz target briefly (clang, a tree of its own)
#   make fuzz   run each fuzz target for FUZZ_SECONDS (default 60)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
MAKEFLAGS += --no-print-directory

# Debian packages the build needs; any llvm-N-dev with N >= 14 will do.
# g++ and zlib1g-dev: linking LLVM's static archives (MFX_LLVM_STATIC, the GPU pack).
# clang-14 and libclang-rt-14-dev: the libFuzzer targets (tests/fuzz).
PACKAGES := check libsqlite3-dev libopenblas-dev libcjson-dev pkg-config \
            python3-numpy python3-pytest python3-torch python3-sklearn cmake libopenmpi-dev \
            openmpi-bin g++ zlib1g-dev clang-14 libclang-rt-14-dev
LLVM_PACKAGE := llvm-14-dev

LSAN_SUPP := $(CURDIR)/tests/lsan.supp
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                 $(if $(wildcard $(LSAN_SUPP)),LSAN_OPTIONS=suppressions=$(LSAN_SUPP))

.PHONY: all deps build build-asan build-fuzz test fuzz run clean

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

# Debug info with -O1: the sanitizers stay fast enough for every test. Its
# tests read the kernels the release tree's tests compiled (LLVM's output is
# the same however mfx was built; see MFX_TEST_KERNEL_CACHE in CMakeLists.txt).
build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
	      -DMFX_SANITIZE=ON -DMFX_TEST_KERNEL_CACHE=$(abspath $(BUILD))/test-kernel-cache
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# libFuzzer needs clang (CC: read when the tree is first configured; a changed
# CMAKE_C_COMPILER would reset the cache); only the fuzz programs and the
# libraries they need are built.
build-fuzz: deps
	CC=$(FUZZ_CC) cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	      -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DMFX_FUZZ=ON -DMFX_FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target mfx_fuzz

# The sanitizer tree hunts memory errors in mfx's own code; tests that only
# drive the same code as others through packaging and installs (the release
# tree runs them) are left out there, to keep CI within its 15 minutes.
ASAN_SKIP = ^(test_cli_sh|test_embed_sh|test_embed_moe_sh|test_device_check_sh)$$

test: build build-asan build-fuzz
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cd $(ASAN_BUILD) && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS) -E '$(ASAN_SKIP)'
	cd $(FUZZ_BUILD) && $(SANITIZER_ENV) ctest --output-on-failure -j$(JOBS) -R '^fuzz_'

# Crashes go to $(FUZZ_BUILD)/crashes; add one to tests/fuzz/regressions/NAME/.
fuzz: build-fuzz
	@mkdir -p $(FUZZ_BUILD)/crashes
	@failed=""; for f in $(FUZZ_BUILD)/bin/fuzz_*; do \
	  name=$$(basename $$f); target=$${name#fuzz_}; \
	  dirs=tests/fuzz/$$target; \
	  [ -d tests/fuzz/regressions/$$target ] && dirs="$$dirs tests/fuzz/regressions/$$target"; \
	  MFX_FUZZ_ARTIFACTS=$(FUZZ_BUILD)/crashes $(SANITIZER_ENV) \
	    bash tests/fuzz/run.sh $$f $(FUZZ_SECONDS) $$dirs || failed="$$failed $$name"; \
	done; \
	[ -z "$$failed" ] || { echo "mfx: fuzz targets that failed:$$failed (inputs in $(FUZZ_BUILD)/crashes)"; exit 1; }

run: build
	$(BUILD)/bin/mfx demo

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
