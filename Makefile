# Thin wrapper over CMake. `make demo` and `make test` install what is missing first.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps build test demo sanitize fuzz bench format clean mpi

all: build

deps:
	@./scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

demo: build
	./scripts/demo $(BUILD) out

sanitize:
	@./scripts/install-deps --sanitize
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DROPEKIT_SANITIZE=ON \
	  -DROPEKIT_ORACLES_DIR=$(CURDIR)/$(BUILD)/oracles >/dev/null
	cmake --build build-sanitize -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp \
	  ctest --test-dir build-sanitize --output-on-failure -j$(JOBS)

fuzz:
	@./scripts/install-deps --fuzz
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DROPEKIT_FUZZ=ON -DROPEKIT_SANITIZE=ON >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target fuzzers
	./scripts/run-fuzzers build-fuzz $${FUZZ_SECONDS:-60}

# The MPI build of the tools that split work over mpirun / srun ranks (docs/scaling.md). `make test`
# then also runs them (tests/cli/test_mpi.py skips while build-mpi/ does not exist).
MPI_TOOLS = freq-norms find-positional-heads rope-decay rope-dump
mpi:
	@./scripts/install-deps --mpi
	cmake -S . -B build-mpi -DCMAKE_BUILD_TYPE=Release -DROPEKIT_MPI=ON -DROPEKIT_ORACLES=OFF \
	  $(CMAKE_FLAGS) >/dev/null
	cmake --build build-mpi -j$(JOBS) --target $(MPI_TOOLS)

bench: build
	./bench/run $(BUILD) $(BENCH_ARGS)

format:
	clang-format -i $$(find lib tools data bench tests/unit tests/fuzz tests/helpers \
	  -name '*.cpp' -o -name '*.hpp')

clean:
	rm -rf $(BUILD) build-sanitize build-fuzz build-mpi out
