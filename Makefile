# SPDX-License-Identifier: MIT
# libnvpflow: Real-NVP normalizing flows in C.
#
#   make            shared and static library in lib/, and the nvpflow tool
#   make demo       trains the two-moons flow, writes the figure and animation
#   make test       the Check test suite (installs Check when missing);
#                   make check is the same
#   make install    PREFIX=/usr/local DESTDIR= (install-lib and install-cli;
#                   runs ldconfig for a live system install as root); make
#                   uninstall likewise; make dist, distcheck: release tarball
#   make bench      performance figures (tests/bench/bench.mk holds the
#                   PyTorch comparisons: lockstep, parity)
#
# The usual variables are honoured: CC, CFLAGS, CPPFLAGS, LDFLAGS, LDLIBS.

# The release version has one source of truth: include/nvpflow.h.
version_part = $(shell sed -n 's/^\#define NVP_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/nvpflow.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION_MINOR := $(call version_part,MINOR)
VERSION_PATCH := $(call version_part,PATCH)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
# The ABI number (SONAME) changes only when the binary interface breaks.
ABI_VERSION := 1

CC ?= cc
CXX ?= c++
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR ?= $(PREFIX)/bin

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -ffp-contract=off: no multiply and add fused behind the code's back (gcc's
# -std=c11 implies it, clang's default does not), so the portable path and
# the intrinsics kernels round the same with any compiler on any machine;
# no -ffast-math: NaN and Inf matter.  -fno-math-errno lets sqrtf
# vectorise; it changes no result.
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -ffp-contract=off -fno-math-errno -Iinclude $(WARN)
OPT ?= -O2 -g
CFLAGS ?= $(OPT)
CPPFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS := $(BASE_CFLAGS) $(CPPFLAGS) $(CFLAGS)
# Library sources include their headers by layer: "core/error.h".
LIB_CFLAGS := $(ALL_CFLAGS) -Isrc -fPIC -fvisibility=hidden -pthread
LIBS := $(LDFLAGS) -lm -pthread $(LDLIBS)

BUILD := build
# Where the libraries go; the sanitizer builds put theirs under $(BUILD).
LIBOUT := lib
SO_REAL := $(LIBOUT)/libnvpflow.so.$(ABI_VERSION).$(VERSION_MINOR).$(VERSION_PATCH)
SO_NAME := libnvpflow.so.$(ABI_VERSION)
SO_LINK := $(LIBOUT)/libnvpflow.so
STATIC := $(LIBOUT)/libnvpflow.a

# The library's layers, lowest first (src/README.md); the command-line
# tool in src/cli is built on the public header only.
LAYERS := core kernels runtime model data train io
LIB_SRC := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
# Every object records the headers it included (-MMD); a change to one
# rebuilds exactly the objects that use it.
DEPFLAGS = -MMD -MP

.PHONY: FORCE all libs demo test check test-run test-install install uninstall clean examples headercheck check-layers
all: libs cli

libs: $(SO_REAL) $(SO_LINK) $(LIBOUT)/$(SO_NAME) $(STATIC) $(BUILD)/nvpflow.pc

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(DEPFLAGS) -c $< -o $@

# The kernels are where the time goes: let the compiler unroll and
# vectorise their portable loops fully.
$(BUILD)/obj/kernels/%.o: LIB_CFLAGS += -O3
# So are the couplings' affine steps and row gradients, whose loops over a
# row's entries -O2's cheapest cost model leaves scalar.
$(BUILD)/obj/model/coupling_rows.o $(BUILD)/obj/model/coupling_backward.o: LIB_CFLAGS += -O3

-include $(LIB_OBJ:.o=.d)

$(BUILD)/tests $(BUILD)/examples:
	mkdir -p $@

$(SO_REAL): $(LIB_OBJ) src/nvpflow.map
	@mkdir -p $(LIBOUT)
	$(CC) -shared -Wl,-soname,$(SO_NAME) -Wl,--version-script=src/nvpflow.map \
	    -Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIBS)

$(LIBOUT)/$(SO_NAME): $(SO_REAL)
	ln -sf $(notdir $(SO_REAL)) $@

$(SO_LINK): $(LIBOUT)/$(SO_NAME)
	ln -sf $(SO_NAME) $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(LIBOUT)
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

# The .pc file depends on PREFIX and friends, so it is regenerated on every
# build and install rather than cached.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'
$(BUILD)/nvpflow.pc: pkgconfig/nvpflow.pc.in include/nvpflow.h FORCE
	@mkdir -p $(BUILD)
	$(PC_SED) $< > $@
FORCE:

# ---------------------------------------------------------------- examples
# The figure and animation writers of the main job live in examples/figure/;
# what every example shares (messages, options, progress, output checks)
# in examples/common/, on top of the nvpflow tool's strict getopt_long loop,
# number rules and output files (src/cli/opts.c, numparse.c, outfile.c),
# compiled in here too: the tool and the examples write files one way.
FIGURE_SRC := $(wildcard examples/figure/*.c)
TOOL_SHARED := opts numparse outfile tmpfiles
EXAMPLE_SRC := $(wildcard examples/common/*.c) $(TOOL_SHARED:%=src/cli/%.c)
EXAMPLE_HDR := $(wildcard examples/common/*.h) $(TOOL_SHARED:%=src/cli/%.h)
EXAMPLE_CFLAGS := -Iexamples -Isrc/cli
$(BUILD)/examples/two_moons: examples/two_moons.c $(FIGURE_SRC) $(wildcard examples/figure/*.h) $(EXAMPLE_SRC) $(EXAMPLE_HDR) $(STATIC) | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(EXAMPLE_CFLAGS) -o $@ examples/two_moons.c $(FIGURE_SRC) $(EXAMPLE_SRC) $(STATIC) $(LIBS)

# Variational inference with a flow: reverse-KL fits of the four 2-D
# energies of Rezende and Mohamed (2015), log Z against a grid
# (docs/variational.md).  `make energy` runs the full configuration.
$(BUILD)/examples/energy_fit: examples/energy_fit.c $(EXAMPLE_SRC) $(EXAMPLE_HDR) $(STATIC) | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(EXAMPLE_CFLAGS) -o $@ examples/energy_fit.c $(EXAMPLE_SRC) $(STATIC) $(LIBS)

.PHONY: energy test-energy
ENERGY_ARGS ?=
energy: $(BUILD)/examples/energy_fit
	./$(BUILD)/examples/energy_fit $(ENERGY_ARGS)

# A short run with loose bounds: the pipeline works, not the target.
test-energy: $(BUILD)/examples/energy_fit
	sh tests/examples/test_energy_fit.sh $(BUILD)/examples/energy_fit

# Simulation-based inference with a conditional flow, checked against a
# closed-form posterior (docs/sbi.md); `make sbi` builds and runs it.
$(BUILD)/examples/sbi_linear_gaussian: examples/sbi_linear_gaussian.c $(EXAMPLE_SRC) $(EXAMPLE_HDR) $(STATIC) | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) $(EXAMPLE_CFLAGS) -o $@ examples/sbi_linear_gaussian.c $(EXAMPLE_SRC) $(STATIC) $(LIBS)

.PHONY: sbi test-sbi
SBI_ARGS ?=
sbi: $(BUILD)/examples/sbi_linear_gaussian
	./$(BUILD)/examples/sbi_linear_gaussian $(SBI_ARGS)

# A small, quick run of it: sane output, not the figures of docs/sbi.md.
test-sbi: $(BUILD)/examples/sbi_linear_gaussian
	sh tests/examples/test_sbi.sh $(BUILD)/examples/sbi_linear_gaussian

examples: $(BUILD)/examples/two_moons $(BUILD)/examples/energy_fit \
    $(BUILD)/examples/sbi_linear_gaussian

# The main job end to end, with its golden numbers (tests/examples/), and
# lockstep's run checked against it (tests/bench/bench.mk builds lockstep);
# and the quick runs of the simulation-based inference (test-sbi) and
# energy (test-energy) examples.
.PHONY: test-examples
test-examples: $(BUILD)/examples/two_moons $(BUILD)/bench/lockstep test-sbi test-energy
	sh tests/examples/test_two_moons.sh $(BUILD)/examples/two_moons $(BUILD)/bench/lockstep

# The main job: the tutorial end to end with the reference configuration.
DEMO_ARGS ?=
demo: $(BUILD)/examples/two_moons
	./$(BUILD)/examples/two_moons $(DEMO_ARGS)

# --------------------------------------------------------------------- mpi
# Data-parallel training with MPI (docs/mpi.md).  Built only where
# mpicc exists; `make test-mpi` installs Open MPI first when it can.
.PHONY: mpi-example test-mpi
MPICC ?= mpicc
MPI_TRAIN := $(BUILD)/examples/mpi_train
mpi-example: $(STATIC)
	@if command -v $(MPICC) >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory $(MPI_TRAIN); \
	else \
	    echo "mpi-example: skipped: $(MPICC) not found (install Open MPI: apt-get install openmpi-bin libopenmpi-dev)"; \
	fi

$(MPI_TRAIN): examples/mpi_train.c include/nvpflow.h $(EXAMPLE_SRC) $(EXAMPLE_HDR) $(STATIC) | $(BUILD)/examples
	$(MPICC) $(ALL_CFLAGS) $(EXAMPLE_CFLAGS) -o $@ examples/mpi_train.c $(EXAMPLE_SRC) $(STATIC) $(LIBS)

test-mpi: $(STATIC)
	MAKE="$(MAKE)" sh tests/mpi/test_mpi.sh

# --------------------------------------------------------------------- cli
# The command-line tool `nvpflow` (src/cli/), linked against the static
# library.  `make test-cli` runs its end-to-end script.
.PHONY: cli test-cli
MANDIR ?= $(PREFIX)/share/man
CLI_SRC := $(wildcard src/cli/*.c)
CLI_BIN := $(BUILD)/bin/nvpflow
$(CLI_BIN): $(CLI_SRC) $(wildcard src/cli/*.h) include/nvpflow.h $(STATIC)
	@mkdir -p $(BUILD)/bin
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_SRC) $(STATIC) $(LIBS)

cli: $(CLI_BIN)

test-cli: $(CLI_BIN)
	sh tests/cli/test_cli.sh $(CLI_BIN)

# --------------------------------------------------------------------- c++
# The header-only C++17 wrapper include/nvpflow.hpp: its quickstart example
# and its test, built strictly against the static library.  The test is
# compiled as two translation units (the second with NVP_TEST_SECOND_TU) to
# show the header links from several; TEST_CPP_RUNNER runs it under a tool,
# e.g. make test-cpp TEST_CPP_RUNNER="valgrind --leak-check=full --error-exitcode=1"
.PHONY: cpp-example test-cpp
CXXFLAGS ?= $(OPT)
CPP_STRICT := -std=c++17 -Wall -Wextra -pedantic -Werror -Iinclude
CPP_BUILD := $(BUILD)/cpp
CPP_HEADERS := include/nvpflow.hpp include/nvpflow.h
TEST_CPP_RUNNER ?=

$(CPP_BUILD):
	mkdir -p $@

$(CPP_BUILD)/quickstart: examples/cpp/quickstart.cpp $(CPP_HEADERS) $(STATIC) | $(CPP_BUILD)
	$(CXX) $(CPP_STRICT) $(CXXFLAGS) -o $@ $< $(STATIC) $(LIBS)

cpp-example: $(CPP_BUILD)/quickstart

$(CPP_BUILD)/test_cpp: tests/cpp/test_cpp.cpp $(CPP_HEADERS) $(STATIC) | $(CPP_BUILD)
	$(CXX) $(CPP_STRICT) $(CXXFLAGS) -DNVP_TEST_SECOND_TU -c -o $(CPP_BUILD)/test_cpp_tu2.o $<
	$(CXX) $(CPP_STRICT) $(CXXFLAGS) -o $@ $< $(CPP_BUILD)/test_cpp_tu2.o $(STATIC) $(LIBS)

test-cpp: $(CPP_BUILD)/test_cpp
	$(TEST_CPP_RUNNER) $(CPP_BUILD)/test_cpp $(CPP_BUILD)

# ------------------------------------------------------------------- tests
# `make test` first makes sure Check is installed (Debian package `check`),
# then builds and runs the suite in a sub-make that can query pkg-config.
test:
	@sh tests/ensure_check.sh
	@$(MAKE) --no-print-directory test-run

# The conventional name for the same suite.
check: test

TEST_SRC := $(wildcard tests/*.c)
TEST_HDR := $(wildcard tests/*.h)
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)
TEST_BIN := $(BUILD)/tests/nvp_tests

$(TEST_BIN): $(TEST_SRC) $(TEST_HDR) $(STATIC) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Isrc $(CHECK_CFLAGS) -o $@ $(TEST_SRC) $(STATIC) $(CHECK_LIBS) $(LIBS)

test-run: $(TEST_BIN) headercheck check-layers
	./$(TEST_BIN)

# No source file includes a header from a layer above its own.
check-layers:
	@sh tests/layers/check_layers.sh src $(LAYERS) cli

# The public header alone, strictly, as C99, C11 and C++17.
headercheck: | $(BUILD)/tests
	printf '#include "nvpflow.h"\nint main(void) { return nvp_version_number() == 0; }\n' > $(BUILD)/tests/hdr.c
	for std in c99 c11; do \
	    $(CC) -std=$$std -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only $(BUILD)/tests/hdr.c || exit 1; done
	cp $(BUILD)/tests/hdr.c $(BUILD)/tests/hdr.cpp
	$(CXX) -std=c++17 -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only $(BUILD)/tests/hdr.cpp
	printf '#include "nvpflow.hpp"\nint main() { return nvp::version_number() == 0; }\n' > $(BUILD)/tests/hdrpp.cpp
	$(CXX) -std=c++17 -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only $(BUILD)/tests/hdrpp.cpp
	@echo "headercheck: nvpflow.h compiles alone as C99, C11 and C++17, nvpflow.hpp as C++17"

# The Python binding (examples/python, ctypes) against the shared library.
.PHONY: test-python
test-python: libs
	python3 -m unittest discover -s examples/python/tests -v

# ------------------------------------------------------------------- bench
# Performance figures and the PyTorch comparisons (bench, lockstep, parity)
# are research tools, kept apart from the product build.
include tests/bench/bench.mk

# ------------------------------------------------------------- reliability
# Sanitizer and fuzzing builds get their own objects and libraries under
# $(BUILD): a sub-make with BUILD and LIBOUT pointing there, so they never
# mix with the normal build in $(BUILD)/obj and lib/.
.PHONY: test-asan test-cli-asan test-valgrind test-tsan fuzz fuzz-corpus check-abi
SAN_CC ?= clang
SAN_OPT ?= -O1 -g -fno-omit-frame-pointer
ASAN_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_BUILD := $(BUILD)/asan
ASAN_TIMEOUT_MULTIPLIER ?= 5

# The Check suite under AddressSanitizer, UndefinedBehaviorSanitizer and
# LeakSanitizer.  Check forks a child per test, as in `make test`, so every
# test is leak-checked on its own and a crash fails only its own test.
test-asan:
	@sh tests/ensure_check.sh
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) LIBOUT=$(ASAN_BUILD)/lib \
	    CC="$(SAN_CC)" CFLAGS="$(SAN_OPT) $(ASAN_SAN)" $(ASAN_BUILD)/tests/nvp_tests
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1 \
	CK_TIMEOUT_MULTIPLIER=$(ASAN_TIMEOUT_MULTIPLIER) $(ASAN_BUILD)/tests/nvp_tests

# The command-line tool's end-to-end script against a tool and library
# built with AddressSanitizer and UBSan.
test-cli-asan:
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) LIBOUT=$(ASAN_BUILD)/lib \
	    CC="$(SAN_CC)" CFLAGS="$(SAN_OPT) $(ASAN_SAN)" \
	    LDFLAGS="$(ASAN_SAN)" $(ASAN_BUILD)/bin/nvpflow
	ASAN_OPTIONS=detect_leaks=1 sh tests/cli/test_cli.sh $(ASAN_BUILD)/bin/nvpflow

# The Check suite under Valgrind (no fork: Valgrind follows one process).
# Valgrind 3.19 hides AVX-512 from CPUID, so the library picks its AVX2 or
# portable kernels there.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=1
VALGRIND_TIMEOUT_MULTIPLIER ?= 20
test-valgrind:
	@sh tests/ensure_check.sh
	@command -v $(VALGRIND) >/dev/null 2>&1 || \
	    { echo "test-valgrind: $(VALGRIND) not found (apt-get install valgrind)"; exit 1; }
	@$(MAKE) --no-print-directory $(TEST_BIN)
	CK_FORK=no CK_TIMEOUT_MULTIPLIER=$(VALGRIND_TIMEOUT_MULTIPLIER) \
	    $(VALGRIND) $(VALGRIND_FLAGS) $(TEST_BIN)

# ThreadSanitizer: one chain shared by four threads and its own pool
# (tests/concurrency/test_threads.c), with the CPU's best kernels and again
# with the portable ones (TSan does not see accesses made inside SIMD
# intrinsics), and the pool's stress run
# (tests/concurrency/test_pool.c); the first report fails the run.
TSAN_BUILD := $(BUILD)/tsan
TSAN_ITERATIONS ?= 20
TSAN_POOL_JOBS ?= 20000
test-tsan:
	@$(MAKE) --no-print-directory BUILD=$(TSAN_BUILD) LIBOUT=$(TSAN_BUILD)/lib \
	    CC="$(SAN_CC)" CFLAGS="$(SAN_OPT) -fsanitize=thread" $(TSAN_BUILD)/lib/libnvpflow.a
	$(SAN_CC) $(BASE_CFLAGS) $(SAN_OPT) -fsanitize=thread -o $(TSAN_BUILD)/test_threads \
	    tests/concurrency/test_threads.c $(TSAN_BUILD)/lib/libnvpflow.a $(LIBS)
	$(SAN_CC) $(BASE_CFLAGS) $(SAN_OPT) -fsanitize=thread -Isrc -o $(TSAN_BUILD)/test_pool \
	    tests/concurrency/test_pool.c $(TSAN_BUILD)/lib/libnvpflow.a $(LIBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    $(TSAN_BUILD)/test_threads $(TSAN_ITERATIONS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    $(TSAN_BUILD)/test_threads $(TSAN_ITERATIONS) portable
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	    $(TSAN_BUILD)/test_pool $(TSAN_POOL_JOBS)

# libFuzzer harnesses (tests/fuzz/): the library instrumented with
# -fsanitize=fuzzer-no-link,address,undefined, each harness run for
# FUZZ_SECONDS on a copy of its seed corpus; any finding fails the target
# (reproducer: $(BUILD)/fuzz/crash-*).  FUZZ_FLAGS adds libFuzzer options.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?=
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_HARNESSES := load api
fuzz:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) LIBOUT=$(FUZZ_BUILD)/lib \
	    CC="$(FUZZ_CC)" CFLAGS="$(SAN_OPT) -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	    $(FUZZ_BUILD)/lib/libnvpflow.a
	for h in $(FUZZ_HARNESSES); do \
	    $(FUZZ_CC) $(BASE_CFLAGS) $(SAN_OPT) -fsanitize=fuzzer $(FUZZ_SAN) \
	        -o $(FUZZ_BUILD)/fuzz_$$h tests/fuzz/fuzz_$$h.c \
	        $(FUZZ_BUILD)/lib/libnvpflow.a $(LIBS) || exit 1; \
	    rm -rf $(FUZZ_BUILD)/corpus_$$h; \
	    cp -R tests/fuzz/corpus_$$h $(FUZZ_BUILD)/corpus_$$h || exit 1; \
	done
	@status=0; for h in $(FUZZ_HARNESSES); do \
	    log=$(FUZZ_BUILD)/fuzz_$$h.log; rm -f $(FUZZ_BUILD)/crash-$$h-*; \
	    echo "fuzz: fuzz_$$h for $(FUZZ_SECONDS) s (log: $$log)"; \
	    $(FUZZ_BUILD)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -max_len=8192 -artifact_prefix=$(FUZZ_BUILD)/crash-$$h- $(FUZZ_FLAGS) \
	        $(FUZZ_BUILD)/corpus_$$h >$$log 2>&1; rc=$$?; \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
	    echo "fuzz: fuzz_$$h: $${runs:-?} executions, exit status $$rc"; \
	    if [ $$rc -ne 0 ]; then tail -n 60 $$log; status=1; fi; \
	done; exit $$status

# Regenerates the committed seed corpora (tests/fuzz/corpus_*; files of
# other names, such as kept reproducers, stay).
fuzz-corpus: $(STATIC)
	@mkdir -p $(BUILD)/fuzz
	$(CC) $(ALL_CFLAGS) -o $(BUILD)/fuzz/make_corpus tests/fuzz/make_corpus.c $(STATIC) $(LIBS)
	mkdir -p tests/fuzz/corpus_load tests/fuzz/corpus_api
	$(BUILD)/fuzz/make_corpus tests/fuzz/corpus_load tests/fuzz/corpus_api

# The shared library exports exactly tests/abi/exported_symbols.txt (all
# nvp_*) and needs only libc and libm; the header compiles on its own.
check-abi: libs headercheck
	sh tests/abi/check_abi.sh $(SO_REAL) tests/abi/exported_symbols.txt

# ----------------------------------------------------------------- install
# make install     = install-lib + install-cli; make uninstall likewise
#                    (uninstall-lib, uninstall-cli).
# install-lib      nvpflow.h and nvpflow.hpp (INCLUDEDIR); libnvpflow.so.X.Y.Z,
#                  its links libnvpflow.so.X and libnvpflow.so, libnvpflow.a
#                  (LIBDIR); nvpflow.pc (PKGCONFIGDIR); the CMake package
#                  nvpflowConfig.cmake and nvpflowConfigVersion.cmake
#                  (CMAKEDIR, targets nvpflow::nvpflow and
#                  nvpflow::nvpflow_static); the examples (EXAMPLESDIR).
# install-cli      the nvpflow tool (BINDIR) and its manual page (MANDIR).
# PREFIX=/usr/local by default; DESTDIR stages the files under a directory
# (for packagers); each directory variable above can be set on its own.
# The .pc and CMake files name LIBDIR and INCLUDEDIR relative to the prefix
# when they lie under PREFIX, so a moved install still works
# (pkg-config --define-prefix; find_package from the files' own location).
#
# The dynamic linker only finds a newly installed libnvpflow.so.1 once
# ldconfig has refreshed its cache.  install-lib and uninstall-lib run
# `ldconfig` when they change the live system: no DESTDIR, run as root,
# and ldconfig found (LDCONFIG= turns this off, LDCONFIG=/path picks
# another).  A LIBDIR outside the linker's search path (/etc/ld.so.conf,
# /lib, /usr/lib) is never found that way: link programs with
# -Wl,-rpath,LIBDIR or run them with LD_LIBRARY_PATH=LIBDIR; install-lib
# prints a note when the cache does not list the installed library.
#
# make dist        nvpflow-VERSION.tar.gz in the top directory: the tracked
#                  files as they are in the working tree (git archive);
#                  without git, a copy of the tree less build outputs
# make distcheck   unpacks that tarball in a temporary directory, builds it
#                  and runs `make check` there
# make test-install          installs into a temporary prefix and builds
#                  against it: pkg-config (C, C++, shared, static), CMake
#                  find_package and Meson when they are installed, a moved
#                  prefix, DESTDIR staging and uninstall
# make test-python-install   pip installs examples/python into a virtual
#                  environment and uses it with the library found through
#                  pkg-config (no NVPFLOW_LIBRARY, no LD_LIBRARY_PATH)
.PHONY: install install-lib install-cli uninstall uninstall-lib uninstall-cli \
    test-install test-python-install dist distcheck
CMAKEDIR ?= $(LIBDIR)/cmake/nvpflow
DOCDIR ?= $(PREFIX)/share/doc/nvpflow
EXAMPLESDIR ?= $(DOCDIR)/examples
LDCONFIG ?= ldconfig

# Examples installed with the library, paths kept below examples/.
EXAMPLE_FILES := $(sort $(wildcard examples/README.md examples/*.c examples/*.h \
    examples/common/*.c examples/common/*.h \
    examples/figure/*.c examples/figure/*.h examples/cpp/*.cpp \
    examples/python/two_moons.py))
# The nvpflow tool's files the examples compile in (TOOL_SHARED), installed
# beside them in tool/.
EXAMPLE_TOOL_FILES := $(TOOL_SHARED:%=src/cli/%.c) $(TOOL_SHARED:%=src/cli/%.h)
EXAMPLE_TOOL_DEST := $(EXAMPLE_TOOL_FILES:src/cli/%=$(DESTDIR)$(EXAMPLESDIR)/tool/%)

# $(call prefix_rel,DIR): DIR below $(PREFIX) ("lib"), empty when DIR does
# not lie under PREFIX.  $(call up_dirs,REL): one ".." per component.
empty :=
space := $(empty) $(empty)
prefix_rel = $(patsubst $(PREFIX)/%,%,$(filter $(PREFIX)/%,$(1)))
up_dirs = $(subst $(space),/,$(patsubst %,..,$(subst /, ,$(1))))
# $(call from_prefix,DIR,PREFIXVAR): DIR as PREFIXVAR/REL when it lies
# under PREFIX, else DIR as it is.
from_prefix = $(if $(call prefix_rel,$(1)),$(2)/$(call prefix_rel,$(1)),$(1))
PC_LIBDIR = $(call from_prefix,$(LIBDIR),$${prefix})
PC_INCLUDEDIR = $(call from_prefix,$(INCLUDEDIR),$${prefix})
# The CMake package finds the prefix from its own directory.
CMAKE_PREFIX_EXPR = $(if $(call prefix_rel,$(CMAKEDIR)),$${CMAKE_CURRENT_LIST_DIR}/$(call up_dirs,$(call prefix_rel,$(CMAKEDIR))),$(PREFIX))
CMAKE_SED = sed -e 's|@PREFIX_EXPR@|$(CMAKE_PREFIX_EXPR)|' \
    -e 's|@LIBDIR@|$(call from_prefix,$(LIBDIR),$${_nvpflow_prefix})|' \
    -e 's|@INCLUDEDIR@|$(call from_prefix,$(INCLUDEDIR),$${_nvpflow_prefix})|' \
    -e 's|@SHARED_LIB@|$(notdir $(SO_REAL))|' -e 's|@SONAME@|$(SO_NAME)|' \
    -e 's|@VERSION@|$(VERSION)|' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|'

# Runs ldconfig when installing into the live system (see above); then,
# when LIBDIR is not in the linker's cache, says what else to do.
define run_ldconfig
	@ldconfig="$(LDCONFIG)"; \
	if [ -z "$(DESTDIR)" ] && [ -n "$$ldconfig" ] && [ "$$(id -u)" = 0 ] && \
	    command -v $$ldconfig >/dev/null 2>&1; then \
	    echo "$$ldconfig"; $$ldconfig || exit 1; \
	fi
endef
define ldconfig_note
	@ldconfig="$(or $(LDCONFIG),ldconfig)"; \
	if [ -z "$(DESTDIR)" ] && ! $$ldconfig -p 2>/dev/null | \
	    awk -v f="$(LIBDIR)/$(SO_NAME)" '$$NF == f { found = 1 } END { exit !found }'; then \
	    echo "note: the dynamic linker's cache does not list $(LIBDIR)/$(SO_NAME):"; \
	    echo "      link programs with -Wl,-rpath,$(LIBDIR) or run them with LD_LIBRARY_PATH=$(LIBDIR)"; \
	fi
endef

install: install-lib install-cli

install-lib: libs
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(CMAKEDIR)
	install -m 644 include/nvpflow.h $(DESTDIR)$(INCLUDEDIR)/nvpflow.h
	install -m 644 include/nvpflow.hpp $(DESTDIR)$(INCLUDEDIR)/nvpflow.hpp
	install -m 755 $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(notdir $(SO_REAL))
	ln -sf $(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libnvpflow.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libnvpflow.a
	$(PC_SED) pkgconfig/nvpflow.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc
	$(CMAKE_SED) pkgconfig/nvpflowConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/nvpflowConfig.cmake
	ptr=$$(printf '__SIZEOF_POINTER__\n' | $(CC) -E -P -x c - 2>/dev/null | tail -n 1); \
	case "$$ptr" in [1-9]|[1-9][0-9]) ;; *) ptr= ;; esac; \
	$(CMAKE_SED) -e "s|@SIZEOF_VOID_P@|$$ptr|" pkgconfig/nvpflowConfigVersion.cmake.in \
	    > $(DESTDIR)$(CMAKEDIR)/nvpflowConfigVersion.cmake
	chmod 644 $(DESTDIR)$(CMAKEDIR)/nvpflowConfig.cmake \
	    $(DESTDIR)$(CMAKEDIR)/nvpflowConfigVersion.cmake
	@for f in $(EXAMPLE_FILES); do \
	    d="$(DESTDIR)$(EXAMPLESDIR)/$${f#examples/}"; \
	    install -d "$${d%/*}" && install -m 644 "$$f" "$$d" || exit 1; \
	done; echo "installed $(words $(EXAMPLE_FILES)) examples in $(DESTDIR)$(EXAMPLESDIR)"
	install -d $(DESTDIR)$(EXAMPLESDIR)/tool
	install -m 644 $(EXAMPLE_TOOL_FILES) $(DESTDIR)$(EXAMPLESDIR)/tool/
	$(run_ldconfig)
	$(ldconfig_note)

install-cli: cli
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/nvpflow
	install -m 644 src/cli/nvpflow.1 $(DESTDIR)$(MANDIR)/man1/nvpflow.1

uninstall: uninstall-lib uninstall-cli

# Removes what install-lib installed, then the directories of its own that
# are left empty.
uninstall-lib:
	rm -f $(DESTDIR)$(INCLUDEDIR)/nvpflow.h $(DESTDIR)$(INCLUDEDIR)/nvpflow.hpp \
	    $(DESTDIR)$(LIBDIR)/$(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	    $(DESTDIR)$(LIBDIR)/libnvpflow.so $(DESTDIR)$(LIBDIR)/libnvpflow.a \
	    $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc \
	    $(DESTDIR)$(CMAKEDIR)/nvpflowConfig.cmake \
	    $(DESTDIR)$(CMAKEDIR)/nvpflowConfigVersion.cmake \
	    $(patsubst examples/%,$(DESTDIR)$(EXAMPLESDIR)/%,$(EXAMPLE_FILES)) \
	    $(EXAMPLE_TOOL_DEST)
	rmdir $(patsubst examples/%,$(DESTDIR)$(EXAMPLESDIR)/%,$(filter-out examples/,$(sort $(dir $(EXAMPLE_FILES))))) \
	    $(DESTDIR)$(EXAMPLESDIR)/tool \
	    $(DESTDIR)$(EXAMPLESDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true
	$(run_ldconfig)

uninstall-cli:
	rm -f $(DESTDIR)$(BINDIR)/nvpflow $(DESTDIR)$(MANDIR)/man1/nvpflow.1

test-install: libs cli
	MAKE="$(MAKE)" sh tests/install/test_install.sh

PYTHON ?= python3
test-python-install: libs
	MAKE="$(MAKE)" PYTHON="$(PYTHON)" sh tests/install/test_python_install.sh

DIST_NAME := nvpflow-$(VERSION)
dist:
	sh tests/install/make_dist.sh $(DIST_NAME) $(DIST_NAME).tar.gz

distcheck:
	MAKE="$(MAKE)" sh tests/install/distcheck.sh $(DIST_NAME)

clean:
	rm -rf $(BUILD) $(LIBOUT)
