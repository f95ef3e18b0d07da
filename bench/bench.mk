# Benchmark programs (make bench). Performance is asserted here, never in tests.
BENCH_CORE := $(BUILD)/bench/bench_core

$(BENCH_CORE): bench/bench_core.c $(LIBPLEXUS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OPENBLAS_CFLAGS) -o $@ $< $(ALL_LDFLAGS) -L$(BUILD) -lplexus \
	  -Wl,-rpath,$(abspath $(BUILD)) -ldl -lm

# `plexus bench --ops`: the op suite on every loaded backend (build with
# libdnnl-dev installed for oneDNN), checked against cpu_blas; BENCH_OPS_ARGS=--quick
# for the six-case suite, or e.g. "--op conv2d --svg ops.svg".
BENCH_OPS_ARGS ?=

.PHONY: bench-programs bench-ops
bench-programs: $(BENCH_CORE) $(PLUGINS) $(CLI)
	$(BENCH_CORE)
	$(CLI) bench --ops $(BENCH_OPS_ARGS)

bench-ops: $(CLI) $(PLUGINS)
	$(CLI) bench --ops $(BENCH_OPS_ARGS)

# Plexus vs PyTorch on the example models, side by side (bench/compare.sh,
# bench/README.md): `plexus bench --model` for every backend and for the
# router's own choice ("auto"), PyTorch's step on the same batch, threads
# and data, and the ratio. PyTorch is Debian's python3-torch under
# /usr/bin/python3; it and the pthread OpenBLAS are installed here only if
# missing (and only where apt-get can), else the PyTorch column says why it
# was skipped. PEER_ARGS adds compare.sh options (--inference, --backends A,B).
PEER_STEPS ?= 40
PEER_REPEAT ?= 1
PEER_MODELS ?= examples/fashion_mnist_mlp.json examples/fashion_mnist_cnn.json
PEER_ARGS ?= --inference
PEER_PACKAGES := python3-torch libopenblas0-pthread

.PHONY: bench-peer bench-peer-deps
bench-peer: $(CLI) $(PLUGINS) bench-peer-deps
	PLEXUS=$(CLI) bench/compare.sh $(PEER_MODELS) --steps $(PEER_STEPS) --repeat $(PEER_REPEAT) $(PEER_ARGS)

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
