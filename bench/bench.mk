# Benchmark programs (make bench). Performance is asserted here, never in tests.
BENCH_CORE := $(BUILD)/bench/bench_core

$(BENCH_CORE): bench/bench_core.c $(LIBPLEXUS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OPENBLAS_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -L$(BUILD) -lplexus \
	  -Wl,-rpath,$(abspath $(BUILD)) -ldl -lm

.PHONY: bench-programs
bench-programs: $(BENCH_CORE) $(PLUGINS)
	$(BENCH_CORE)
