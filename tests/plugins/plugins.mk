# tests/plugins/plugins.mk — test plugins: deliberately broken and
# third-party-style backends (sources in tests/plugins/broken/), included by
# the top-level Makefile. Each goes into its own directory under
# $(TEST_PLUGIN_DIR) so a test can load exactly the ones it names.
#
# Built like real plugins ($(PLUGIN_CFLAGS): -fvisibility=hidden, the
# sanitizers under SANITIZE=1), exporting only plx_plugin_entry. Files and
# directories are made 0755 whatever the umask, because the loader refuses
# group- or world-writable plugins.

TP_SRC := tests/plugins/broken
tp_comma := ,
TP_DEPS := $(TP_SRC)/plugin_common.h $(wildcard abi/*.h) tests/plugins/plugins.mk

# One source, one plugin of the same name.
TP_SIMPLE := no_entry abi_major old_minor new_minor init_fail unusable null_slots kernel_error \
  missing_slot planted devmem
# misc.c built once per variant (see its header comment); order = MISC_VARIANT.
TP_MISC := entry_null tiny_desc bad_name zero_devices no_copy short_table

TP_SIMPLE_SO := $(foreach p,$(TP_SIMPLE),$(TEST_PLUGIN_DIR)/$(p)/libplexus-$(p).so)
TP_MISC_SO := $(foreach p,$(TP_MISC),$(TEST_PLUGIN_DIR)/$(p)/libplexus-$(p).so)
TP_DUP_SO := $(TEST_PLUGIN_DIR)/dup/libplexus-dup_a.so $(TEST_PLUGIN_DIR)/dup/libplexus-dup_b.so \
  $(TEST_PLUGIN_DIR)/dup/libplexus-dup_c.so
# Not on any search path: missing_dep links against it, then cannot find it.
TP_TESTDEP := $(TEST_PLUGIN_DIR)/deps/libplexus_testdep.so

TEST_PLUGINS := $(TP_SIMPLE_SO) $(TP_MISC_SO) $(TP_DUP_SO) $(TEST_PLUGIN_DIR)/slow/libplexus-slow.so \
  $(TEST_PLUGIN_DIR)/hugelayout/libplexus-hugelayout.so \
  $(TEST_PLUGIN_DIR)/missing_dep/libplexus-missing_dep.so \
  $(TEST_PLUGIN_DIR)/notelf/libplexus-notelf.so

# $(1): target .so, $(2): source, $(3): extra compile flags, $(4): extra
# link inputs, $(5): extra prerequisites.
define tp_plugin_rule
$(1): $(2) $(TP_DEPS) $(5)
	@mkdir -p $$(@D)
	$$(CC) $$(PLUGIN_CFLAGS) $(3) -shared -o $$@ $(2) $(4) $$(ALL_LDFLAGS)
	@chmod 755 $$(@D) $$@
endef

$(foreach p,$(TP_SIMPLE),$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/$(p)/libplexus-$(p).so,$(TP_SRC)/$(p).c)))
$(foreach i,1 2 3 4 5 6,$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/$(word $(i),$(TP_MISC))/libplexus-$(word $(i),$(TP_MISC)).so,$(TP_SRC)/misc.c,-DMISC_VARIANT=$(i))))
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/dup/libplexus-dup_a.so,$(TP_SRC)/dup.c,-DDUP_VARIANT=1))
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/dup/libplexus-dup_b.so,$(TP_SRC)/dup.c,-DDUP_VARIANT=2))
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/dup/libplexus-dup_c.so,$(TP_SRC)/dup.c,-DDUP_VARIANT=3))
# planted.c again, as "slow": the same cheap claim, but every run takes 3 ms.
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/slow/libplexus-slow.so,$(TP_SRC)/planted.c,-DPLANTED_SLOW=1))
# ... and as "hugelayout": an absurd layout_bytes (ABI 1.2) the executor must refuse.
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/hugelayout/libplexus-hugelayout.so,$(TP_SRC)/planted.c,-DPLANTED_HUGE_LAYOUT=1))
$(eval $(call tp_plugin_rule,$(TP_TESTDEP),$(TP_SRC)/testdep.c))
# --no-as-needed: keep the DT_NEEDED entry whatever the toolchain's default;
# no rpath, so at run time the library cannot be found.
$(eval $(call tp_plugin_rule,$(TEST_PLUGIN_DIR)/missing_dep/libplexus-missing_dep.so,$(TP_SRC)/missing_dep.c,,\
  -L$(TEST_PLUGIN_DIR)/deps -Wl$(tp_comma)--no-as-needed -lplexus_testdep,$(TP_TESTDEP)))

# A text file with a plugin's name.
$(TEST_PLUGIN_DIR)/notelf/libplexus-notelf.so: tests/plugins/plugins.mk
	@mkdir -p $(@D)
	printf 'This is not a shared object, only a text file named like a plugin.\n' > $@
	@chmod 755 $(@D)
	@chmod 644 $@

# Tests that load these (or run the CLI, or install) get them built first
# even when made one by one (make $(BUILD)/tests/runtime/test_loader).
$(BUILD)/tests/runtime/test_loader: | $(TEST_PLUGINS) $(PLUGINS)
$(BUILD)/tests/runtime/test_calibration: | $(TEST_PLUGINS) $(PLUGINS)
$(BUILD)/tests/runtime/internal/test_layouts: | $(TEST_PLUGINS) $(PLUGINS)
$(BUILD)/tests/runtime/test_plugin_cli: | $(TEST_PLUGINS) $(PLUGINS) $(CLI)
$(BUILD)/tests/examples/test_custom_backend: | $(PLUGINS) $(CLI) $(BUILD)/plexus.pc
