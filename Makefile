# The verbs a newcomer needs. Each is a thin call into scripts/ or CMake.
BUILD ?= build
# ASan + UBSan with clang, and the libFuzzer targets: one tree for make test-sanitize and make fuzz.
SANITIZE_BUILD ?= build-sanitize
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)

# The quick loop for contributors: the unit-labelled tests (no root, network, Chromium or
# PostgreSQL), with the build as it is; `make test` runs every label.
.PHONY: all deps test-deps build python demo test unit test-sanitize fuzz bench format format-check tidy clean

all: build

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The Python module alone, in $(BUILD)/python (PYTHONPATH=$(BUILD)/python python3 -c 'import
# patchvec'); pip install --no-build-isolation . installs it (docs/python.md).
python: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS) --target python

# The main job end to end: synthetic dataset, training, evaluation, similarity search.
demo: build
	$(BUILD)/patchvec demo --out $(BUILD)/demo --json $(BUILD)/demo/summary.json

test: test-deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure

unit: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest -j$(JOBS) -L unit --output-on-failure

$(SANITIZE_BUILD)/CMakeCache.txt:
	CC=clang CXX=clang++ cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
	  -DPATCHVEC_SANITIZE=ON -DPATCHVEC_FUZZ=ON -DPATCHVEC_BUILD_BENCH=OFF \
	  -DPATCHVEC_BUILD_PYTHON=OFF

# The whole test suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize: test-deps $(SANITIZE_BUILD)/CMakeCache.txt
	cmake --build $(SANITIZE_BUILD) -j$(JOBS)
	cd $(SANITIZE_BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 900

# Every fuzz target for FUZZ_SECONDS each (scripts/fuzz.sh).
fuzz: test-deps $(SANITIZE_BUILD)/CMakeCache.txt
	cmake --build $(SANITIZE_BUILD) -j$(JOBS) --target fuzzers
	scripts/fuzz.sh $(SANITIZE_BUILD) $(FUZZ_SECONDS)

bench: test-deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

# Fails when a tracked C++ file is not as `make format` would leave it (.ci/run).
format-check: test-deps
	clang-format --dry-run -Werror $$(git ls-files '*.cpp' '*.h')

# clang-tidy with .clang-tidy's checks over the sources that never include libtorch headers
# (those take minutes each): every module but nn, search, sampling and patchcore, apps/ and the
# Python module's sources.
# Uses the compile commands of $(BUILD); prints the findings and fails on any.
TIDY_SOURCES = $(shell git ls-files 'apps/*.cpp' 'python/src/*.cpp' $(foreach m,util image data synth weights eval train store inspect service station,'src/$(m)/*.cpp'))
tidy: test-deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS) --target patchvec
	scripts/tidy.sh $(BUILD) $(JOBS) $(TIDY_SOURCES)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
