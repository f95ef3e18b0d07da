# Plexus — one plain Makefile.
#   make                 build the runtime, CLI and every plugin that can be built here
#   make test            build and run all tests (cmocka)
#   make test SANITIZE=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench           run the benchmark programs (bench/)
#   make install PREFIX=/usr/local
CC ?= cc
SANITIZE ?= 0
PREFIX ?= /usr/local
DESTDIR ?=

ifeq ($(SANITIZE),1)
BUILD ?= build-san
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT := -O1
else
BUILD ?= build
SAN_FLAGS :=
OPT := -O2
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wvla -Wno-missing-field-initializers
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SAN_FLAGS) $(LDFLAGS)
PLUGIN_CFLAGS := $(ALL_CFLAGS) -fvisibility=hidden

OPENBLAS_CFLAGS := $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
OPENBLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
CJSON_CFLAGS := $(shell pkg-config --cflags libcjson 2>/dev/null || echo -I/usr/include/cjson)
CJSON_LIBS := $(shell pkg-config --libs libcjson 2>/dev/null || echo -lcjson)

LIBDIR := $(PREFIX)/lib
PLUGINDIR := $(LIBDIR)/plexus/plugins
VERSION := 0.1.0

# ---- runtime: libplexus.so ---------------------------------------------------
RUNTIME_SRC := $(wildcard runtime/*.c) $(wildcard runtime/ops/*.c) $(wildcard runtime/data/*.c) $(wildcard runtime/io/*.c)
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/obj/%.o)
LIBPLEXUS := $(BUILD)/libplexus.so
# The same objects as a static archive, for tests of internal (hidden) functions.
LIBPLEXUS_INTERNAL := $(BUILD)/libplexus_internal.a
RUNTIME_LIBS := $(CJSON_LIBS) -lz -ldl -lpthread -lm

# ---- CLI ---------------------------------------------------------------------
CLI_SRC := $(wildcard runtime/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
CLI := $(BUILD)/plexus

# ---- plugins -----------------------------------------------------------------
CPU_BLAS_SRC := $(wildcard plugins/cpu_blas/*.c)
CPU_BLAS_OBJ := $(CPU_BLAS_SRC:%.c=$(BUILD)/obj/%.o)
CPU_BLAS := $(BUILD)/plugins/libplexus-cpu_blas.so

LAYERS_SRC := $(wildcard plugins/layers/*.c)
LAYERS_OBJ := $(LAYERS_SRC:%.c=$(BUILD)/obj/%.o)
LAYERS := $(BUILD)/plugins/libplexus-layers.so

# oneDNN backend: built whenever oneDNN's headers are installed (libdnnl-dev;
# .ci/install-deps.sh installs it). WITH_ONEDNN=0 leaves it out; WITH_ONEDNN=1
# makes missing headers an error.
WITH_ONEDNN ?= auto
ONEDNN_OK := $(if $(filter 0,$(WITH_ONEDNN)),,$(firstword $(wildcard /usr/include/dnnl.h /usr/include/oneapi/dnnl/dnnl.h)))
ifeq ($(WITH_ONEDNN)$(ONEDNN_OK),1)
$(error WITH_ONEDNN=1 but oneDNN's headers are not installed (apt-get install libdnnl-dev))
endif
ONEDNN_SRC := $(wildcard plugins/onednn/*.c)
ONEDNN_OBJ := $(ONEDNN_SRC:%.c=$(BUILD)/obj/%.o)
ONEDNN := $(BUILD)/plugins/libplexus-onednn.so

PLUGINS := $(CPU_BLAS) $(if $(LAYERS_SRC),$(LAYERS)) $(if $(and $(ONEDNN_OK),$(ONEDNN_SRC)),$(ONEDNN))

# ---- tests -------------------------------------------------------------------
TEST_SRC := $(filter-out tests/test_util.c,$(shell find tests -name 'test_*.c' 2>/dev/null | sort))
TEST_BIN := $(TEST_SRC:%.c=$(BUILD)/%)
TEST_UTIL_OBJ := $(BUILD)/obj/tests/test_util.o
TEST_PLUGIN_DIR := $(abspath $(BUILD))/test-plugins

.PHONY: all test check deps install uninstall clean bench demo FORCE
all: $(LIBPLEXUS) $(CLI) $(PLUGINS) $(BUILD)/plexus.pc

$(BUILD)/obj/runtime/%.o: runtime/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden $(CJSON_CFLAGS) \
	  -DPLX_INSTALL_PLUGIN_DIR='"$(PLUGINDIR)"' -DPLX_VERSION='"$(VERSION)"' -MMD -MP -c $< -o $@

$(LIBPLEXUS): $(RUNTIME_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libplexus.so.1 -o $@ $^ $(ALL_LDFLAGS) $(RUNTIME_LIBS)
	ln -sf libplexus.so $(BUILD)/libplexus.so.1

$(LIBPLEXUS_INTERNAL): $(RUNTIME_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(CLI_OBJ) $(LIBPLEXUS)
	$(CC) -o $@ $(CLI_OBJ) $(ALL_LDFLAGS) -L$(BUILD) -lplexus -Wl,-rpath,'$$ORIGIN' -Wl,-rpath,'$$ORIGIN/../lib' $(CJSON_LIBS) -lz -lm

$(BUILD)/obj/plugins/%.o: plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(OPENBLAS_CFLAGS) -MMD -MP -c $< -o $@

$(CPU_BLAS): $(CPU_BLAS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(ALL_LDFLAGS) $(OPENBLAS_LIBS) -lpthread -lm

# PREFIX is compiled into the loader (install plugin dir) and written into
# plexus.pc: both are rebuilt when it changes.
PREFIX_STAMP := $(BUILD)/prefix.stamp
$(PREFIX_STAMP): FORCE
	@mkdir -p $(dir $@)
	@if [ "$$(cat $@ 2>/dev/null)" != "$(PREFIX)" ]; then echo "$(PREFIX)" > $@; fi
FORCE:
$(BUILD)/obj/runtime/loader.o: $(PREFIX_STAMP)

# -z nodelete: libgomp's worker threads outlive the plugin's shutdown, so
# dlclose must not unmap the plugin, libdnnl or libgomp under them.
$(ONEDNN): $(ONEDNN_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-z,nodelete -o $@ $^ $(ALL_LDFLAGS) -ldnnl -lgomp -lpthread

$(LAYERS): $(LAYERS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(ALL_LDFLAGS) -lm

$(BUILD)/plexus.pc: Makefile $(PREFIX_STAMP)
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\nplugindir=$${libdir}/plexus/plugins\n\nName: plexus\nDescription: Plexus deep-learning runtime\nVersion: %s\nCflags: -I$${includedir}/plexus\nLibs: -L$${libdir} -lplexus\n' '$(PREFIX)' '$(VERSION)' > $@

# ---- tests -------------------------------------------------------------------
$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CJSON_CFLAGS) -Wno-unused-parameter -DPLX_TEST_PLUGIN_DIR='"$(abspath $(BUILD))/plugins"' \
	  -DPLX_TEST_BAD_PLUGIN_DIR='"$(TEST_PLUGIN_DIR)"' -DPLX_TEST_BUILD_DIR='"$(abspath $(BUILD))"' \
	  -DPLX_TEST_SOURCE_DIR='"$(abspath .)"' -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL_OBJ) $(LIBPLEXUS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(TEST_UTIL_OBJ) $(ALL_LDFLAGS) -L$(BUILD) -lplexus -Wl,-rpath,$(abspath $(BUILD)) -lcmocka -lm -ldl -lpthread

# Tests under tests/runtime/internal/ exercise hidden runtime functions: they
# link the static archive instead of libplexus.so.
$(BUILD)/tests/runtime/internal/%: $(BUILD)/obj/tests/runtime/internal/%.o $(TEST_UTIL_OBJ) $(LIBPLEXUS_INTERNAL) $(LIBPLEXUS)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< $(TEST_UTIL_OBJ) $(LIBPLEXUS_INTERNAL) $(ALL_LDFLAGS) -lcmocka $(RUNTIME_LIBS)

# Test plugins (deliberately broken and third-party style) have their own rules.
-include tests/plugins/plugins.mk

# The one command of README.md: install build dependencies, build, run every test.
check: deps
	@$(MAKE) test

deps:
	@sh .ci/install-deps.sh

test: all $(TEST_BIN) $(TEST_PLUGINS)
	@PLX_BUILD=$(BUILD) sh tests/run_tests.sh $(TEST_BIN)

bench: all
	@$(MAKE) -s bench-programs BUILD=$(BUILD)
	@$(MAKE) -s bench-peer BUILD=$(BUILD)

# From a fresh Debian machine to a trained Fashion-MNIST CNN and its test
# accuracy: installs dependencies and the data set, builds, trains.
demo:
	@sh scripts/demo.sh

-include bench/bench.mk

# Keep test objects between runs (they are intermediate files of the test rules).
.SECONDARY:

# ---- install -----------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/include/plexus $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(PREFIX)/bin
	install -m 644 abi/*.h $(DESTDIR)$(PREFIX)/include/plexus/
	install -m 755 $(LIBPLEXUS) $(DESTDIR)$(LIBDIR)/libplexus.so.1
	ln -sf libplexus.so.1 $(DESTDIR)$(LIBDIR)/libplexus.so
	install -m 755 $(PLUGINS) $(DESTDIR)$(PLUGINDIR)/
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/plexus
	install -m 644 $(BUILD)/plexus.pc $(DESTDIR)$(LIBDIR)/pkgconfig/plexus.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/plexus $(DESTDIR)$(LIBDIR)/plexus
	rm -f $(DESTDIR)$(LIBDIR)/libplexus.so $(DESTDIR)$(LIBDIR)/libplexus.so.1 \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/plexus.pc $(DESTDIR)$(PREFIX)/bin/plexus

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
