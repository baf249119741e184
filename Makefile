# mapram: the two commands of the README are `make demo` and `make check`.
# Every target installs missing Debian build dependencies (as root) first.
#
#   make            build into build/ (binaries: build/mapram-vm, build/mapram)
#   make check      build, then run every test; last line "N passed, N failed[, N skipped]"
#   make check-asan the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   make check-tsan the same under ThreadSanitizer (build-tsan/; scripts/tsan.supp lists by-design races)
#   make check-fuzz the libFuzzer harnesses (clang, build-fuzz/): every corpus input once, then
#                   FUZZ_SECONDS (default 10) of fuzzing each, and clang -fsyntax-only over
#                   every C file (scripts/clang-syntax.py); what CI runs
#   make fuzz       FUZZ_SECONDS (default 60) of fuzzing each harness, one after the other
#   make soak       100 live round trips of one guest across every transport and
#                   capability mix, and 200000 QMP messages from 16 clients at once
#                   (MAPRAM_SOAK_TRIPS / _MESSAGES / _CLIENTS; make check runs them short)
#   make demo       save and restore a running VM, and say what happened
#   make bench      benchmarks (figures only, never a pass/fail on speed)
#   make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
# meson test selections for check-asan / check-tsan, e.g. "--suite unit --suite qtest-smoke"
ASAN_SUITES ?=
TSAN_SUITES ?=

.PHONY: all deps fuzz-deps build check check-asan check-tsan check-fuzz fuzz fuzzers soak demo bench clean

all: build

deps:
	@scripts/install-deps.sh --qemu

$(BUILD)/build.ninja:
	./configure --builddir=$(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	@ln -sfn system/mapram-vm $(BUILD)/mapram-vm
	@ln -sfn tools/mapram $(BUILD)/mapram

# A failed test is run once more on its own; one that then passes is named
# FLAKY above the summary line and still counted as failed (scripts/run-tests.sh).
check: build
	@scripts/run-tests.sh $(BUILD)

# G_SLICE=always-malloc: GLib's slice magazines keep what was lost
# reachable, so without it the leak checks miss any leaked GString,
# GList or GHashTable node (json-glib's surrogate-pair leak among them).
$(ASAN_BUILD)/build.ninja:
	./configure --builddir=$(ASAN_BUILD) --enable-asan

check-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	@ln -sfn system/mapram-vm $(ASAN_BUILD)/mapram-vm
	@ln -sfn tools/mapram $(ASAN_BUILD)/mapram
	@G_SLICE=always-malloc ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MAPRAM_TEST_TIMEOUT=240 scripts/run-tests.sh $(ASAN_BUILD) --timeout-multiplier 3 $(ASAN_SUITES)

$(TSAN_BUILD)/build.ninja:
	./configure --builddir=$(TSAN_BUILD) --enable-tsan

# Any report fails the test (exitcode 66), but for scripts/tsan.supp.  GLib's
# slice allocator hands blocks between threads under locks TSan cannot see.
check-tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD)
	@ln -sfn system/mapram-vm $(TSAN_BUILD)/mapram-vm
	@ln -sfn tools/mapram $(TSAN_BUILD)/mapram
	@G_SLICE=always-malloc TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan.supp" \
	  MAPRAM_TEST_TIMEOUT=240 scripts/run-tests.sh $(TSAN_BUILD) --timeout-multiplier 4 $(TSAN_SUITES)

$(FUZZ_BUILD)/build.ninja:
	./configure --builddir=$(FUZZ_BUILD) --enable-fuzzing

fuzz-deps:
	@scripts/install-deps.sh --fuzz

# Only the harnesses (and the libraries they link) are built: CI's time.
fuzzers: fuzz-deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzzers

# tests/fuzz/run-fuzz.sh: a crash, leak, UBSan report or GLib critical fails
# the test; its input is left in $(FUZZ_BUILD)/fuzz-artifacts/.
check-fuzz: fuzzers
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-10} scripts/run-tests.sh $(FUZZ_BUILD) --no-rebuild --suite fuzz

fuzz: fuzzers
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/run-tests.sh $(FUZZ_BUILD) --no-rebuild --suite fuzz-run

soak: build
	@MAPRAM_SOAK_TRIPS=$${MAPRAM_SOAK_TRIPS:-100} \
	  MAPRAM_SOAK_MESSAGES=$${MAPRAM_SOAK_MESSAGES:-200000} \
	  MAPRAM_SOAK_CLIENTS=$${MAPRAM_SOAK_CLIENTS:-16} \
	  scripts/run-tests.sh $(BUILD) --suite soak --timeout-multiplier 10 --verbose

demo: build
	$(BUILD)/mapram demo

bench: build
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
