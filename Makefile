# The verbs a newcomer needs. Each is a thin call into scripts/ or CMake.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps test-deps build demo test bench format clean

all: build

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The main job end to end: synthetic dataset, training, evaluation, similarity search.
demo: build
	$(BUILD)/patchvec demo --out $(BUILD)/demo --json $(BUILD)/demo/summary.json

test: test-deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure

bench: test-deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)
	bench/run.sh $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD)
