# The two commands of the README, and a few more. Everything builds through CMake.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS        ?= $(shell nproc)
PREFIX      ?= /usr/local

.PHONY: all deps build test gallery test-isa test-sanitize test-memcheck test-aarch64 fuzz demo bench bench-mpi install clean

all: build

# Debian packages (installs only what is missing; needs root or sudo).
deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release > /dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The test suite (ctest prints its summary last).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j 1

# The seeds' experiments with their pictures: docs/gallery/ and docs/gallery.md
# (under 10 minutes on 2 cores; runs in runs/gallery/).
gallery: build
	@bash scripts/gallery.sh docs/gallery $(BUILD)

# The suite once per instruction-set level of the kernels that this CPU supports
# (DFN_ISA=amx, avx512, avx2, generic; `diffusion --version` lists them). Left out:
# the samplers on exact mixture oracles (test_sample_exact, test_control), which
# run no network and so no kernel, the gallery, whose networks the layer and
# model tests cover at every level, and the MPI check (processes, not kernels);
# `make test` runs them. ISA_SKIP="level ..." leaves levels out (CI: the best
# level, which `make test` has just run, as every run without DFN_ISA does).
test-isa: build
	@for isa in $$($(BUILD)/diffusion --version | sed -n 's/.*this CPU: \(.*\))$$/\1/p'); do \
	    case " $(ISA_SKIP) " in *" $$isa "*) echo "== DFN_ISA=$$isa: skipped (ISA_SKIP)"; continue ;; esac; \
	    echo "== ctest under DFN_ISA=$$isa"; \
	    (cd $(BUILD) && DFN_ISA=$$isa ctest --output-on-failure -j 1 -E '^(test_sample_exact|test_control|gallery|mpi)$$') || exit 1; \
	done

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DDFN_SANITIZE=ON > /dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 1

# A reduced suite under valgrind's memcheck, portable kernels (DFN_ISA=generic).
test-memcheck: build
	@bash scripts/install-deps.sh .ci/packages-memcheck
	@bash scripts/memcheck.sh $(BUILD)

# Cross-compiled for aarch64, a named subset of the suite under qemu-user
# (adds the arm64 architecture and its libraries to the system).
test-aarch64: deps
	@bash scripts/test-aarch64.sh build-aarch64

# Every parser under libFuzzer (clang, ASan + UBSan) for FUZZ_SECONDS each,
# from the committed seed corpora (fuzz/README.md); fails on a finding.
FUZZ_TARGETS = $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
fuzz: deps
	@bash scripts/install-deps.sh .ci/packages-fuzz
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDFN_FUZZ=ON -DDFN_MPI=OFF > /dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(FUZZ_TARGETS)
	@bash scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# The main job.
demo: build
	@bash scripts/demo.sh $(BUILD)

# Speed against PyTorch, in one run (needs python3-torch).
bench: build
	@bash bench/run.sh $(BUILD)

# Data-parallel training over MPI: 2 processes against 2 threads, the exchange
# time, and the efficiency projected onto N machines.
bench-mpi: build
	@bash bench/mpi.sh $(BUILD)

# The header, the shared and static library, the program and diffusion.pc under
# PREFIX (make install PREFIX=$$HOME/.local); then
# cc prog.c $$(pkg-config --cflags --libs diffusion).
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) build-aarch64
