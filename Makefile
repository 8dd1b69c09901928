# The two commands of the README, and a few more. Everything builds through CMake.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
JOBS        ?= $(shell nproc)

.PHONY: all deps build test test-isa test-sanitize demo bench clean

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

# The suite once per instruction-set level of the kernels that this CPU supports
# (DFN_ISA=avx512, avx2, generic; `diffusion --version` lists them).
test-isa: build
	@for isa in $$($(BUILD)/diffusion --version | sed -n 's/.*this CPU: \(.*\))$$/\1/p'); do \
	    echo "== ctest under DFN_ISA=$$isa"; \
	    (cd $(BUILD) && DFN_ISA=$$isa ctest --output-on-failure -j 1) || exit 1; \
	done

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DDFN_SANITIZE=ON > /dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 1

# The main job.
demo: build
	@bash scripts/demo.sh $(BUILD)

# Speed against PyTorch, in one run (needs python3-torch).
bench: build
	@bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
