# kvmini: build the library, the command, the unit tests and the integration suite.
#   make            build/kvmini and build/libkvmini.{a,so}
#   make test       unit tests (cmocka), plain and under ASan/UBSan
#   make check      make test + integration tests that boot real guests (nested when /dev/kvm is missing)
#   make format     clang-format the tree
#   make bench      every benchmark, kvmini next to QEMU (nested when /dev/kvm is missing; BENCH_RUNS=3)
#   make bench-micro instructions per virtio request under callgrind (no KVM; not part of check)
#   make install    kvmini, libkvmini.{a,so}, include/kvmini.h and kvmini.pc under PREFIX (/usr/local)
#   make ARCH=arm64 cross-builds a static build/arm64/kvmini (and libkvmini.a) for arm64 hosts with
#                   aarch64-linux-gnu-gcc against Debian's arm64 libraries (scripts/arm64-sysroot.sh)
# BUILD=dir puts every output under dir (default: build; build/arm64 for ARCH=arm64).

# The guest architecture, which is the host's: vmm/arch/$(ARCH)/ is compiled in, nothing else's.
ARCH ?= x86
ifeq ($(ARCH),arm64)
BUILD ?= build/arm64
CROSS_COMPILE ?= aarch64-linux-gnu-
CC := $(CROSS_COMPILE)gcc
AR := $(CROSS_COMPILE)ar
ARM64_SYSROOT ?= $(HOME)/.cache/kvmini/arm64-sysroot
SYSROOT_STAMP := $(ARM64_SYSROOT)/.complete
ARCH_CPPFLAGS := -isystem $(ARM64_SYSROOT)/usr/include -isystem $(ARM64_SYSROOT)/usr/include/aarch64-linux-gnu
ARCH_LDFLAGS := -static -L$(ARM64_SYSROOT)/usr/lib/aarch64-linux-gnu
ARCH_LIBS := -lfdt
# Devices of the PC platform only (port I/O, ACPI): not built for arm64.
ARCH_EXCLUDE := devices/i8042.c devices/rtc.c devices/acpi_pm.c
ASM_SRCS :=
else ifeq ($(ARCH),x86)
BUILD ?= build
CC ?= cc
AR ?= ar
SYSROOT_STAMP :=
ARCH_CPPFLAGS :=
ARCH_LDFLAGS :=
ARCH_LIBS :=
ARCH_EXCLUDE :=
ASM_SRCS := vmm/arch/x86/dsdt_blob.S
else
$(error ARCH=$(ARCH): kvmini builds for ARCH=x86 or ARCH=arm64)
endif

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS_ALL := -std=gnu11 -D_GNU_SOURCE -I. -Iinclude -Ivmm/arch/$(ARCH)/include $(ARCH_CPPFLAGS) $(CPPFLAGS)
LIBS := $(ARCH_LIBS) -lpthread -lz -lzstd -lxxhash -ljansson -lseccomp -lcap-ng

LIB_SRCS := $(sort $(wildcard common/*.c vmm/*.c vmm/api/*.c vmm/migration/*.c vmm/arch/$(ARCH)/*.c devices/*.c devices/disk/*.c virtio/*.c net/*.c))
LIB_SRCS := $(filter-out vmm/main.c vmm/ctl.c $(ARCH_EXCLUDE),$(LIB_SRCS))
# Tests, integration programs, examples, benchmarks and fuzzers are host (x86) builds only.
HOST_ONLY = $(if $(filter arm64,$(ARCH)),,$(1))
UNIT_SRCS := $(call HOST_ONLY,$(sort $(wildcard tests/unit/test_*.c)))
# Integration programs run on the guest's architecture: for arm64 only the arch-neutral library one.
ITEST_SRCS := $(if $(filter arm64,$(ARCH)),tests/integration/lib_lifecycle.c,$(sort $(wildcard tests/integration/*.c)))

DSDT_AML := $(BUILD)/acpi/dsdt.aml

define objs
$(patsubst %.c,$(1)/obj/%.o,$(filter %.c,$(2))) $(patsubst %.S,$(1)/obj/%.o,$(filter %.S,$(2)))
endef

LIB_OBJS := $(call objs,$(BUILD),$(LIB_SRCS) $(ASM_SRCS))
PIC_OBJS := $(patsubst $(BUILD)/obj/%,$(BUILD)/pic/%,$(LIB_OBJS))
ASAN_DIR := $(BUILD)/asan
ASAN_LIB_OBJS := $(call objs,$(ASAN_DIR),$(LIB_SRCS) $(ASM_SRCS))
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
ASAN_UNIT_BINS := $(patsubst tests/unit/%.c,$(ASAN_DIR)/tests/%,$(UNIT_SRCS))
ITEST_BINS := $(patsubst tests/integration/%.c,$(BUILD)/itests/%,$(ITEST_SRCS))
EXAMPLE_BINS := $(patsubst docs/examples/%.c,$(BUILD)/examples/%,$(call HOST_ONLY,$(sort $(wildcard docs/examples/*.c))))
# The request-path microbenchmark needs valgrind's client-request header; built with `all` where it is.
BENCH_BINS := $(patsubst bench/micro/%.c,$(BUILD)/bench/%,$(call HOST_ONLY,$(sort $(wildcard bench/micro/*.c))))
VALGRIND_H := $(wildcard /usr/include/valgrind/callgrind.h)

.SECONDARY:
.PHONY: all test check unit-plain unit-asan format clean install-deps install bench-micro bench
ifeq ($(ARCH),arm64)
# The command, the static library and the library's lifecycle test (static: the arm64 test host
# has only busybox); unit tests are host (x86) builds.
all: $(BUILD)/kvmini $(BUILD)/libkvmini.a $(ITEST_BINS)
# Host-only targets: their lists are empty for arm64 (below), and this stops them with a message.
.PHONY: not-for-arm64
test check unit-plain unit-asan bench bench-micro install fuzz fuzz-run: not-for-arm64
not-for-arm64:
	@echo "make $(MAKECMDGOALS): not for ARCH=arm64 (a cross build); the arm64 code's unit tests run in 'make test'" >&2
	@exit 1
$(SYSROOT_STAMP): scripts/arm64-sysroot.sh
	scripts/arm64-sysroot.sh $(ARM64_SYSROOT)
else
all: $(BUILD)/kvmini $(BUILD)/libkvmini.a $(BUILD)/libkvmini.so $(ITEST_BINS) $(EXAMPLE_BINS) \
     $(if $(VALGRIND_H),$(BENCH_BINS))
endif

$(DSDT_AML): vmm/arch/x86/dsdt.asl vmm/arch/x86/layout.h scripts/gen-prt.sh
	@mkdir -p $(dir $@)
	scripts/gen-prt.sh vmm/arch/x86/layout.h >$(dir $@)prt.asl
	iasl -vs -I $(dir $@) -p $(basename $@) $< >$(basename $@).log 2>&1 || { cat $(basename $@).log; exit 1; }

$(BUILD)/obj/%.o: %.c | $(SYSROOT_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -MMD -MP -c $< -o $@
$(BUILD)/obj/%.o: %.S $(DSDT_AML)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -DDSDT_AML_PATH='"$(DSDT_AML)"' -c $< -o $@
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -fPIC -MMD -MP -c $< -o $@
$(BUILD)/pic/%.o: %.S $(DSDT_AML)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -DDSDT_AML_PATH='"$(DSDT_AML)"' -fPIC -c $< -o $@
$(ASAN_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -O1 -g $(SAN_FLAGS) $(WARN) -MMD -MP -c $< -o $@
$(ASAN_DIR)/obj/%.o: %.S $(DSDT_AML)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -DDSDT_AML_PATH='"$(DSDT_AML)"' -c $< -o $@

$(BUILD)/libkvmini.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^
$(BUILD)/libkvmini.so: $(PIC_OBJS)
	$(CC) -shared -Wl,-soname,libkvmini.so.$(SOVERSION) -o $@ $^ $(LIBS)
$(ASAN_DIR)/libkvmini.a: $(ASAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kvmini: $(BUILD)/obj/vmm/main.o $(BUILD)/obj/vmm/ctl.o $(BUILD)/libkvmini.a
	$(CC) $(CFLAGS) $(ARCH_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkvmini.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -o $@ $< $(UNIT_EXTRA) $(BUILD)/libkvmini.a -lcmocka $(LIBS)
$(ASAN_DIR)/tests/%: tests/unit/%.c $(ASAN_DIR)/libkvmini.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -O1 -g $(SAN_FLAGS) $(WARN) -o $@ $< $(UNIT_EXTRA) $(ASAN_DIR)/libkvmini.a -lcmocka $(LIBS)
# arm64 code that is pure (no KVM) is unit-tested on every host, though only an arm64 build will
# put it in the library: the test links its objects (and libfdt) itself.
ARM64_PURE_SRCS := vmm/arch/arm64/fdt.c vmm/arch/arm64/boot.c
ARM64_TESTS := $(filter $(BUILD)/tests/test_arm64_%,$(UNIT_BINS))
ASAN_ARM64_TESTS := $(filter $(ASAN_DIR)/tests/test_arm64_%,$(ASAN_UNIT_BINS))
$(ARM64_TESTS): $(call objs,$(BUILD),$(ARM64_PURE_SRCS))
$(ARM64_TESTS): UNIT_EXTRA = $(call objs,$(BUILD),$(ARM64_PURE_SRCS)) -lfdt
$(ASAN_ARM64_TESTS): $(call objs,$(ASAN_DIR),$(ARM64_PURE_SRCS))
$(ASAN_ARM64_TESTS): UNIT_EXTRA = $(call objs,$(ASAN_DIR),$(ARM64_PURE_SRCS)) -lfdt
# kvm_open()'s refusals (another API version, a missing capability) are played through a
# wrapped ioctl(), since no real KVM answers that way.
$(BUILD)/tests/test_kvm_open $(ASAN_DIR)/tests/test_kvm_open: UNIT_EXTRA = -Wl,--wrap=ioctl
$(BUILD)/itests/%: tests/integration/%.c $(BUILD)/libkvmini.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) $(ARCH_LDFLAGS) -o $@ $< $(BUILD)/libkvmini.a $(LIBS)

$(BUILD)/bench/%: bench/micro/%.c $(BUILD)/libkvmini.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(WARN) -o $@ $< $(BUILD)/libkvmini.a $(LIBS)

# The examples use only the public header, as a program outside the tree would.
$(BUILD)/examples/%: docs/examples/%.c $(BUILD)/libkvmini.a include/kvmini.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Iinclude $(CFLAGS) $(WARN) -o $@ $< $(BUILD)/libkvmini.a $(LIBS)

# Unit tests: every binary runs even when an earlier one fails; the summary line counts binaries.
unit-plain: $(UNIT_BINS)
	@tests/run-unit.sh "unit" $(UNIT_BINS)
unit-asan: $(ASAN_UNIT_BINS)
	@tests/run-unit.sh "unit (ASan/UBSan)" $(ASAN_UNIT_BINS)

test: unit-plain unit-asan

check: test all
	$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=10
	$(MAKE) --no-print-directory ARCH=arm64 BUILD=$(BUILD)/arm64
	tests/integration/run.sh $(BUILD)

bench-micro:
	+scripts/bench-micro.sh --build $(BUILD)

# Results in docs/bench/latest.{json,txt,svg}; not part of check.
BENCH_RUNS ?= 3
bench: all
	scripts/bench-all.sh --build $(BUILD) --runs $(BENCH_RUNS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

install-deps:
	scripts/install-deps.sh

# Installation. kvmini.pc is written at install time with the PREFIX given then; `pkg-config
# --static` adds what the static library needs. DESTDIR is for staging (packaging).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
SOVERSION := 0
VERSION := 0.1.0
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(BUILD)/kvmini $(DESTDIR)$(BINDIR)/kvmini
	install -m 644 $(BUILD)/libkvmini.a $(DESTDIR)$(LIBDIR)/libkvmini.a
	install -m 755 $(BUILD)/libkvmini.so $(DESTDIR)$(LIBDIR)/libkvmini.so.$(SOVERSION)
	ln -sf libkvmini.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkvmini.so
	install -m 644 include/kvmini.h $(DESTDIR)$(INCLUDEDIR)/kvmini.h
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	  'Name: kvmini' 'Description: a minimal KVM virtual machine monitor as a library' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lkvmini' \
	  'Libs.private: $(LIBS)' >$(DESTDIR)$(LIBDIR)/pkgconfig/kvmini.pc

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Fuzzing (libFuzzer): `make fuzz` builds the targets; `make fuzz-run FUZZ_SECONDS=N` runs each for N s.
FUZZ_SRCS := $(call HOST_ONLY,$(sort $(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))
# The library objects get the sanitizers too (only the link adds libFuzzer's main); UB aborts, so
# that libFuzzer sees it as a crash.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1
FUZZ_FLAGS := -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_LIB_OBJS := $(call objs,$(FUZZ_DIR),$(LIB_SRCS) $(ASM_SRCS))
FUZZ_SECONDS ?= 20
# Also rebuilt when the Makefile changes: objects built without the sanitizers must not linger.
$(FUZZ_DIR)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS_ALL) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(WARN) -MMD -MP -c $< -o $@
$(FUZZ_DIR)/obj/%.o: %.S $(DSDT_AML)
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS_ALL) -DDSDT_AML_PATH='"$(DSDT_AML)"' -c $< -o $@
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJS)
	clang $(CPPFLAGS_ALL) $(FUZZ_FLAGS) $(WARN) -o $@ $^ $(LIBS)
.PHONY: fuzz fuzz-run
fuzz: $(FUZZ_BINS)
fuzz-run: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$${f##*/fuzz_}; mkdir -p $(FUZZ_DIR)/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 -artifact_prefix=$(FUZZ_DIR)/$$n- \
	    $(FUZZ_DIR)/corpus/$$n tests/fuzz/corpus/$$n >$(FUZZ_DIR)/$$n.log 2>&1; r=$$?; \
	  tail -3 $(FUZZ_DIR)/$$n.log; [ $$r -eq 0 ] || { echo "fuzz: $$n failed ($(FUZZ_DIR)/$$n.log)"; exit 1; }; done
