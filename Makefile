# Thin driver over CMake. `make` builds build/dizuo and libdizuo; `make test`
# runs every test through CTest; `make run MODEL=... PROMPT=...` generates;
# `make serve [MODEL=...] [ARGS=...]` serves the model on 127.0.0.1:8080;
# `make model` retrains the shipped model (models/dizuo-tang.gguf);
# `make cross-test ARCH=aarch64|riscv64` cross-builds the portable core and
# runs its tests under qemu-user (docs/cross.md).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all deps build test asan asan-test tsan tsan-test fuzz cross-test run serve model clean

all: build

deps:
	@scripts/install-deps.sh

build:
	@scripts/install-deps.sh
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@scripts/install-deps.sh
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDZ_SANITIZE=ON -DCMAKE_C_COMPILER=clang
	cmake --build build-asan -j $(JOBS)

asan-test: asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer over the tests whose threads meet: the engine, the server
# (C tests that start `dizuo serve` and the end-to-end suite), the ledger, the
# scheduler and the CPU thread pool. halt_on_error: a data race stops the
# process, so the test fails (the e2e helper prints a dead server's report).
# No OpenCL, CUDA or MPI in this build (their runtimes are not instrumented).
TSAN_TESTS := test_engine|test_serve_(badinput|crash|drain|limits|parse)|test_tenancy|test_sched|test_batch|test_plugin|test_train_resume|e2e_openai
tsan:
	@scripts/install-deps.sh
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDZ_TSAN=ON -DCMAKE_C_COMPILER=clang \
		-DDZ_OPENCL=OFF -DDZ_CUDA=OFF -DDZ_MPI=OFF
	cmake --build build-tsan -j $(JOBS)

tsan-test: tsan
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		ctest --output-on-failure -j $(JOBS) -R '^($(TSAN_TESTS))'

fuzz:
	@scripts/install-deps.sh
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDZ_FUZZ=ON -DDZ_TESTS=OFF -DCMAKE_C_COMPILER=clang
	cmake --build build-fuzz -j $(JOBS)

# The core layers for another processor (Debian's cross compiler, qemu-user),
# built in build-cross-$(ARCH).
cross-test:
	@case "$(ARCH)" in aarch64|riscv64) ;; \
	*) echo "make cross-test: give ARCH=aarch64 or ARCH=riscv64 (got '$(ARCH)')" >&2; exit 2 ;; esac
	JOBS=$(JOBS) scripts/cross-test.sh $(ARCH)

# The model when MODEL is not given: the one dizuo trained itself and ships
# (classical Chinese verse; models/README.md; `make model` retrains it).
DEFAULT_MODEL := models/dizuo-tang.gguf
MODEL ?= $(DEFAULT_MODEL)
DEFAULT_PROMPT := $(if $(filter $(DEFAULT_MODEL),$(MODEL)),床前明月光，,Once upon a time)

run: build
	@if [ ! -f "$(MODEL)" ]; then echo "make run: no model at $(MODEL) (give MODEL=path/to/model.gguf)" >&2; exit 2; fi
	$(BUILD)/dizuo run -m "$(MODEL)" -p "$(if $(PROMPT),$(PROMPT),$(DEFAULT_PROMPT))" $(ARGS)

serve: build
	@if [ ! -f "$(MODEL)" ]; then echo "make serve: no model at $(MODEL) (give MODEL=path/to/model.gguf)" >&2; exit 2; fi
	$(BUILD)/dizuo serve -m "$(MODEL)" $(ARGS)

# Retrains the shipped model from Debian's fortunes-zh (about 20 minutes on 2 cores).
model: build
	scripts/make-model.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz build-cross-*
