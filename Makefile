# Thin driver over CMake. `make` builds build/dizuo and libdizuo; `make test`
# runs every test through CTest; `make run MODEL=... PROMPT=...` generates;
# `make serve [MODEL=...] [ARGS=...]` serves the model on 127.0.0.1:8080.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all deps build test asan asan-test fuzz run serve clean

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

fuzz:
	@scripts/install-deps.sh
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DDZ_FUZZ=ON -DDZ_TESTS=OFF -DCMAKE_C_COMPILER=clang
	cmake --build build-fuzz -j $(JOBS)

# The model when MODEL is not given: the tiny story model of ../shared when
# it is there (dizuo ships no model of its own yet).
DEFAULT_MODEL := $(wildcard ../shared/models/stories260K.gguf)
MODEL ?= $(DEFAULT_MODEL)

run: build
	@if [ -z "$(MODEL)" ]; then \
	  echo "make run: MODEL is required, e.g. make run MODEL=path/to/model.gguf PROMPT=\"Once upon a time\" (dizuo ships no model yet)" >&2; \
	  exit 2; fi
	$(BUILD)/dizuo run -m "$(MODEL)" -p "$(if $(PROMPT),$(PROMPT),Once upon a time)" $(ARGS)

serve: build
	@if [ -z "$(MODEL)" ]; then \
	  echo "make serve: MODEL is required, e.g. make serve MODEL=path/to/model.gguf (dizuo ships no model yet)" >&2; \
	  exit 2; fi
	$(BUILD)/dizuo serve -m "$(MODEL)" $(ARGS)

clean:
	rm -rf build build-asan build-fuzz
