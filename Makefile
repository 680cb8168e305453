# libnvpflow: Real-NVP normalizing flows in C.
#
#   make            shared and static library in lib/
#   make demo       trains the two-moons flow, writes the figure and animation
#   make test       the Check test suite (installs Check when missing)
#   make install    PREFIX=/usr/local DESTDIR= ; make uninstall likewise

# The release version has one source of truth: include/nvpflow.h.
version_part = $(shell sed -n 's/^\#define NVP_VERSION_$(1) \([0-9][0-9]*\)$$/\1/p' include/nvpflow.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION_MINOR := $(call version_part,MINOR)
VERSION_PATCH := $(call version_part,PATCH)
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
# The ABI number (SONAME) changes only when the binary interface breaks.
ABI_VERSION := 0

CC ?= cc
CXX ?= c++
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR ?= $(PREFIX)/bin

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -std=c11 (not gnu11) keeps floating-point contraction off, so the portable
# path rounds the same on every machine; no -ffast-math: NaN and Inf matter.
# -fno-math-errno lets sqrtf vectorise; it changes no result.
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -fno-math-errno -Iinclude $(WARN)
OPT ?= -O2 -g
CFLAGS ?= $(OPT)
ALL_CFLAGS := $(BASE_CFLAGS) $(CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden -pthread
LIBS := -lm -pthread

BUILD := build
SO_REAL := lib/libnvpflow.so.$(ABI_VERSION).$(VERSION_MINOR).$(VERSION_PATCH)
SO_NAME := libnvpflow.so.$(ABI_VERSION)
SO_LINK := lib/libnvpflow.so
STATIC := lib/libnvpflow.a

LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
HEADERS := include/nvpflow.h $(wildcard src/*.h)

.PHONY: FORCE all libs demo test test-run test-install bench install uninstall clean examples headercheck
all: libs

libs: $(SO_REAL) $(SO_LINK) lib/$(SO_NAME) $(STATIC) $(BUILD)/nvpflow.pc

$(BUILD)/obj/%.o: src/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(LIB_CFLAGS) -c $< -o $@

# The matrix multiply is where the time goes: let the compiler unroll and
# vectorise the portable kernel fully.
$(BUILD)/obj/gemm%.o $(BUILD)/obj/adam.o $(BUILD)/obj/cpu.o: LIB_CFLAGS += -O3

$(BUILD)/obj $(BUILD)/tests $(BUILD)/examples:
	mkdir -p $@

$(SO_REAL): $(LIB_OBJ) src/nvpflow.map
	@mkdir -p lib
	$(CC) -shared -Wl,-soname,$(SO_NAME) -Wl,--version-script=src/nvpflow.map \
	    -Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIBS)

lib/$(SO_NAME): $(SO_REAL)
	ln -sf $(notdir $(SO_REAL)) $@

$(SO_LINK): lib/$(SO_NAME)
	ln -sf $(SO_NAME) $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p lib
	rm -f $@
	ar rcs $@ $(LIB_OBJ)

# The .pc file depends on PREFIX and friends, so it is regenerated on every
# build and install rather than cached.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|'
$(BUILD)/nvpflow.pc: pkgconfig/nvpflow.pc.in include/nvpflow.h FORCE | $(BUILD)/obj
	$(PC_SED) $< > $@
FORCE:

# ---------------------------------------------------------------- examples
# The figure and animation writers of the main job live in examples/figure/.
FIGURE_SRC := $(wildcard examples/figure/*.c)
$(BUILD)/examples/two_moons: examples/two_moons.c $(FIGURE_SRC) $(wildcard examples/figure/*.h) $(STATIC) | $(BUILD)/examples
	$(CC) $(ALL_CFLAGS) -Iexamples/figure -o $@ examples/two_moons.c $(FIGURE_SRC) $(STATIC) $(LIBS)

examples: $(BUILD)/examples/two_moons

# The main job: the tutorial end to end with the reference configuration.
DEMO_ARGS ?=
demo: $(BUILD)/examples/two_moons
	./$(BUILD)/examples/two_moons $(DEMO_ARGS)

# --------------------------------------------------------------------- mpi
# Data-parallel training with MPI (examples/mpi_train.md).  Built only where
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

$(MPI_TRAIN): examples/mpi_train.c include/nvpflow.h $(STATIC) | $(BUILD)/examples
	$(MPICC) $(ALL_CFLAGS) -o $@ examples/mpi_train.c $(STATIC) $(LIBS)

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

# ------------------------------------------------------------------- tests
# `make test` first makes sure Check is installed (Debian package `check`),
# then builds and runs the suite in a sub-make that can query pkg-config.
test:
	@sh tests/ensure_check.sh
	@$(MAKE) --no-print-directory test-run

TEST_SRC := $(wildcard tests/*.c)
TEST_HDR := $(wildcard tests/*.h)
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)
TEST_BIN := $(BUILD)/tests/nvp_tests

$(TEST_BIN): $(TEST_SRC) $(TEST_HDR) $(STATIC) | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -Isrc $(CHECK_CFLAGS) -o $@ $(TEST_SRC) $(STATIC) $(CHECK_LIBS) $(LIBS)

test-run: $(TEST_BIN) headercheck
	./$(TEST_BIN)

# The public header alone, strictly, as C99, C11 and C++17.
headercheck: | $(BUILD)/tests
	printf '#include "nvpflow.h"\nint main(void) { return nvp_version_number() == 0; }\n' > $(BUILD)/tests/hdr.c
	for std in c99 c11; do \
	    $(CC) -std=$$std -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only $(BUILD)/tests/hdr.c || exit 1; done
	cp $(BUILD)/tests/hdr.c $(BUILD)/tests/hdr.cpp
	$(CXX) -std=c++17 -Wall -Wextra -pedantic -Werror -Iinclude -fsyntax-only $(BUILD)/tests/hdr.cpp
	@echo "headercheck: nvpflow.h compiles alone as C99, C11 and C++17"

# The Python binding (examples/python, ctypes) against the shared library.
.PHONY: test-python
test-python: libs
	python3 -m unittest discover -s examples/python/tests -v

# ------------------------------------------------------------------- bench
# Performance figures, side by side with PyTorch/OpenBLAS when importable.
$(BUILD)/bench/bench: tests/bench/bench.c $(STATIC)
	@mkdir -p $(BUILD)/bench
	$(CC) $(BASE_CFLAGS) -O2 -Isrc -o $@ tests/bench/bench.c $(STATIC) $(LIBS)

bench: $(BUILD)/bench/bench
	./$(BUILD)/bench/bench tests/bench

# ----------------------------------------------------------------- install
# Installs into a temporary prefix and builds C and C++ programs against it
# with pkg-config alone, shared and static; checks DESTDIR and uninstall.
test-install: libs
	sh tests/install/test_install.sh

install: libs
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/nvpflow.h $(DESTDIR)$(INCLUDEDIR)/nvpflow.h
	install -m 755 $(SO_REAL) $(DESTDIR)$(LIBDIR)/$(notdir $(SO_REAL))
	ln -sf $(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libnvpflow.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libnvpflow.a
	$(PC_SED) pkgconfig/nvpflow.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/nvpflow
	install -m 644 src/cli/nvpflow.1 $(DESTDIR)$(MANDIR)/man1/nvpflow.1

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/nvpflow.h \
	    $(DESTDIR)$(LIBDIR)/$(notdir $(SO_REAL)) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	    $(DESTDIR)$(LIBDIR)/libnvpflow.so $(DESTDIR)$(LIBDIR)/libnvpflow.a \
	    $(DESTDIR)$(PKGCONFIGDIR)/nvpflow.pc
	rm -f $(DESTDIR)$(BINDIR)/nvpflow $(DESTDIR)$(MANDIR)/man1/nvpflow.1

clean:
	rm -rf $(BUILD) lib
