#!/bin/sh
# demo.sh — `make demo`: from a fresh Debian machine to a trained
# Fashion-MNIST CNN and its test accuracy.
#   1. installs the build dependencies (.ci/install-deps.sh) and, if
#      /usr/share/datasets/fashion-mnist is missing, dataset-fashion-mnist
#      (apt-get; through sudo when not root);
#   2. builds Plexus (make);
#   3. trains examples/fashion_mnist_cnn.json with the best backend loaded
#      (a GPU backend ranked first when there is one; otherwise the router
#      picks per op by cost) into build/demo/cnn.safetensors;
#   4. prints the test accuracy.
# Environment: DEMO_EPOCHS=N trains N epochs instead of the model file's
# (DEMO_EPOCHS=1 for a quick look); DEMO_ARGS adds options to `plexus train`
# (e.g. "--limit-train 10000"); PLEXUS_BACKENDS=... ranks backends yourself.
# On a machine without make yet, run `sh scripts/demo.sh` directly.
set -eu

cd "$(dirname "$0")/.."
DATA=/usr/share/datasets/fashion-mnist
MODEL=examples/fashion_mnist_cnn.json
OUT=build/demo/cnn.safetensors
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

say() { printf '\n==> %s\n' "$*" >&2; }

# ---- 1. dependencies ---------------------------------------------------------
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  say "checking build dependencies"
  sh .ci/install-deps.sh
  if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] || [ ! -f "$DATA/t10k-labels-idx1-ubyte.gz" ]; then
    say "installing Fashion-MNIST (dataset-fashion-mnist) into $DATA"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist
  fi
else
  say "not a Debian system: install gcc, make, pkg-config, OpenBLAS, cmocka, cJSON and zlib (dev packages) yourself"
fi
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "demo: Fashion-MNIST is not in $DATA (Debian: apt-get install dataset-fashion-mnist)" >&2
  exit 1
fi

# ---- 2. build ----------------------------------------------------------------
say "building Plexus"
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all

# ---- 3. pick the backend and train -------------------------------------------
loaded=$(build/plexus plugins --json | grep -o '"backends":\[{"name":"[a-z0-9_]*"' | sed 's/.*"name":"//; s/"$//' | tr '\n' ' ')
say "backends loaded: ${loaded:-none}"
backend_args=""
ranking=""
if [ -z "${PLEXUS_BACKENDS:-}" ]; then
  # A GPU backend first when one loaded (a CNN of this size is much faster
  # there); then the CPU backends, of which the router picks per op by cost.
  for b in cuda opencl; do
    case " $loaded " in *" $b "*) ranking="${ranking:+$ranking,}$b" ;; esac
  done
  if [ -n "$ranking" ]; then
    for b in $loaded; do
      case ",$ranking," in *",$b,"*) ;; *) ranking="$ranking,$b" ;; esac
    done
    backend_args="--backend $ranking"
  fi
fi
if [ -n "$ranking" ]; then
  say "backend ranking: $ranking"
elif [ -n "${PLEXUS_BACKENDS:-}" ]; then
  say "backend ranking from PLEXUS_BACKENDS: $PLEXUS_BACKENDS"
else
  say "no GPU backend: the router sends each op to the cheapest CPU backend"
fi

epochs_args=""
[ -n "${DEMO_EPOCHS:-}" ] && epochs_args="--epochs $DEMO_EPOCHS"
mkdir -p build/demo
say "training $MODEL (progress below; the checkpoint goes to $OUT)"
# Progress goes to stderr; --json prints one summary object on stdout.
# shellcheck disable=SC2086 # the argument lists are meant to split
build/plexus train "$MODEL" --out "$OUT" --json $backend_args $epochs_args ${DEMO_ARGS:-} >build/demo/result.json
summary=$(cat build/demo/result.json)

# ---- 4. the result -----------------------------------------------------------
field() { printf '%s\n' "$summary" | grep -o "\"$1\":[^,}]*" | head -n 1 | sed 's/^[^:]*://; s/"//g'; }
accuracy=$(field test_accuracy)
epochs=$(field epochs)
seconds=$(field seconds_per_epoch)
rate=$(field examples_per_second)
if [ -z "$accuracy" ] || [ "$accuracy" = "null" ]; then
  echo "demo: training finished but reported no test accuracy: $summary" >&2
  exit 1
fi
percent=$(awk -v a="$accuracy" 'BEGIN { printf "%.2f", a * 100 }')
per_epoch=$(awk -v s="$seconds" 'BEGIN { printf "%.1f", s }')
per_second=$(awk -v r="$rate" 'BEGIN { printf "%.0f", r }')
cat <<REPORT

============================================================
  Fashion-MNIST CNN ($MODEL)
  TEST ACCURACY: $percent %
  epochs: $epochs, $per_epoch s per epoch, $per_second training examples/s
  checkpoint: $OUT (try: build/plexus eval $OUT)
  summary:    build/demo/result.json
============================================================
REPORT
