# Benchmark programs (make bench). Performance is asserted here, never in tests.
BENCH_CORE := $(BUILD)/bench/bench_core

$(BENCH_CORE): bench/bench_core.c $(LIBPLEXUS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OPENBLAS_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -L$(BUILD) -lplexus \
	  -Wl,-rpath,$(abspath $(BUILD)) -ldl -lm

.PHONY: bench-programs
bench-programs: $(BENCH_CORE) $(PLUGINS)
	$(BENCH_CORE)

# Plexus vs PyTorch on the example models, side by side (bench/compare.sh,
# bench/README.md). PyTorch is Debian's python3-torch under /usr/bin/python3;
# it and the pthread OpenBLAS are installed here only if missing (and only
# where apt-get can), else the PyTorch column says why it was skipped.
PEER_STEPS ?= 40
PEER_REPEAT ?= 1
PEER_MODELS ?= examples/fashion_mnist_mlp.json examples/fashion_mnist_cnn.json
PEER_PACKAGES := python3-torch libopenblas0-pthread

.PHONY: bench-peer bench-peer-deps
bench-peer: $(CLI) $(PLUGINS) bench-peer-deps
	PLEXUS=$(CLI) bench/compare.sh $(PEER_MODELS) --steps $(PEER_STEPS) --repeat $(PEER_REPEAT)

bench-peer-deps:
	@command -v dpkg-query >/dev/null 2>&1 || exit 0; \
	missing=""; \
	for p in $(PEER_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	[ -n "$$missing" ] || exit 0; \
	echo "bench-peer: installing$$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
	{ $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; } || \
	  echo "bench-peer: could not install$$missing; the PyTorch side will report itself skipped"
