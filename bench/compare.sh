#!/bin/bash
# compare.sh — Plexus vs PyTorch on the same model file (bench/README.md).
#
#   bench/compare.sh MODEL.json [MODEL.json ...] [--steps N] [--warmup W]
#                    [--threads T] [--repeat R] [--inference] [--backends A,B]
#                    [--json FILE]
#
# For each model: `plexus bench --model MODEL --steps N --warmup W --json`
# (every loaded backend ranked first in turn, and "auto", the router's own
# choice, each after W untimed warm-up steps) and `bench/peer_torch.py MODEL
# --steps N --warmup W` (PyTorch), R times alternating, best of R per side
# and configuration (interference on a shared machine only slows a run
# down). Prints a Markdown table: examples/s of each Plexus configuration
# and of PyTorch, seconds per epoch, and the ratio Plexus-auto time /
# PyTorch time (< 1: Plexus is faster), with the machine, the OpenBLAS
# kernels and the thread count. --inference adds images/s at batch 256 for
# every configuration and PyTorch (forward passes only on both sides).
# --backends limits the Plexus backends measured (auto is always measured).
# --json FILE also writes every raw result.
#
# Both sides get the same threads (PLEXUS_NUM_THREADS / OMP_NUM_THREADS and
# torch.set_num_threads) and the same OpenBLAS kernels: OPENBLAS_CORETYPE,
# unless already set, is chosen from the CPU's flags by the rule Plexus's
# runtime/cpu_tune.c uses, and passed to both. A PyTorch side that cannot
# run (no torch, an unknown layer type) shows as "skipped: why", exit 0.
# Environment: PLEXUS (default build/plexus), PEER_PYTHON (default
# /usr/bin/python3: Debian's python3-torch is not in other interpreters).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PLEXUS=${PLEXUS:-$root/build/plexus}
PEER_PYTHON=${PEER_PYTHON:-/usr/bin/python3}

usage() {
    echo "usage: bench/compare.sh MODEL.json [MODEL.json ...] [--steps N] [--warmup W] [--threads T]" >&2
    echo "                        [--repeat R] [--inference] [--backends A,B] [--json FILE]" >&2
    exit 2
}

steps=30 warmup=5 threads=${PLEXUS_NUM_THREADS:-2} repeat=1 inference=0 json_out="" backends=""
models=()
while [ $# -gt 0 ]; do
    case "$1" in
    --steps) [ $# -ge 2 ] || usage; steps=$2; shift 2 ;;
    --steps=*) steps=${1#*=}; shift ;;
    --warmup) [ $# -ge 2 ] || usage; warmup=$2; shift 2 ;;
    --warmup=*) warmup=${1#*=}; shift ;;
    --threads) [ $# -ge 2 ] || usage; threads=$2; shift 2 ;;
    --threads=*) threads=${1#*=}; shift ;;
    --repeat) [ $# -ge 2 ] || usage; repeat=$2; shift 2 ;;
    --repeat=*) repeat=${1#*=}; shift ;;
    --inference) inference=1; shift ;;
    --backends) [ $# -ge 2 ] || usage; backends=$2; shift 2 ;;
    --backends=*) backends=${1#*=}; shift ;;
    --json) [ $# -ge 2 ] || usage; json_out=$2; shift 2 ;;
    --json=*) json_out=${1#*=}; shift ;;
    -h | --help) usage ;;
    -*) echo "compare.sh: unknown option '$1'" >&2; usage ;;
    *) models+=("$1"); shift ;;
    esac
done
[ ${#models[@]} -gt 0 ] || usage
for v in "$steps" "$threads" "$repeat"; do
    case "$v" in '' | *[!0-9]* | 0) echo "compare.sh: --steps, --threads and --repeat take integers >= 1" >&2; usage ;; esac
done
case "$warmup" in '' | *[!0-9]*) echo "compare.sh: --warmup takes an integer >= 0" >&2; usage ;; esac
for m in "${models[@]}"; do
    [ -r "$m" ] || { echo "compare.sh: cannot read $m" >&2; exit 2; }
done
if [ ! -x "$PLEXUS" ]; then
    echo "compare.sh: $PLEXUS not found; run make first (or set PLEXUS)" >&2
    exit 1
fi
# Any python3 can parse JSON and format the table; peer_torch.py needs torch.
fmt_python=$PEER_PYTHON
[ -x "$fmt_python" ] || fmt_python=$(command -v python3 || true)
if [ -z "$fmt_python" ]; then
    echo "compare.sh: no python3 to run the PyTorch side or format the table" >&2
    exit 1
fi

# OpenBLAS kernels: the rule of runtime/cpu_tune.c (by CPU feature flags).
coretype=${OPENBLAS_CORETYPE:-}
coretype_src="set by the caller"
if [ -z "$coretype" ] && [ "${PLEXUS_OPENBLAS_CORETYPE:-}" != keep ]; then
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    has() { case "$flags" in *" $1 "*) return 0 ;; esac; return 1; }
    if has avx512f && has avx512bw && has avx512dq && has avx512vl; then
        coretype=SkylakeX
    elif has avx2 && has fma; then
        coretype=Haswell
    fi
    coretype_src="from the CPU flags, as Plexus chooses"
fi
[ -n "$coretype" ] || coretype_src="OpenBLAS's own detection"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results.jsonl
: >"$results"

# record SIDE MODEL RUN KIND FILE-WITH-OUTPUT FILE-WITH-STDERR RC
record() {
    "$fmt_python" - "$@" >>"$results" <<'EOF'
import json, sys
side, model, run, kind, out, err, rc = sys.argv[1:8]
rec = {"side": side, "model": model, "run": int(run), "kind": kind, "rc": int(rc)}
lines = [l for l in open(out, errors="replace").read().splitlines() if l.strip()]
try:
    rec["result"] = json.loads(lines[-1])
    if not isinstance(rec["result"], dict):
        raise ValueError("not an object")
except (IndexError, ValueError):
    tail = [l for l in open(err, errors="replace").read().splitlines() if l.strip()][-3:]
    rec["error"] = " / ".join(tail) or "no output (exit %s)" % rc
print(json.dumps(rec))
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
plexus_env=(env -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS PLEXUS_NUM_THREADS="$threads"
            OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}")
peer_env=(env PLEXUS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS=1
          OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}")
if [ -n "$coretype" ]; then
    plexus_env+=(OPENBLAS_CORETYPE="$coretype")
    peer_env+=(OPENBLAS_CORETYPE="$coretype")
fi
peer_args=(--steps "$steps" --warmup "$warmup" --threads "$threads")
[ "$inference" = 1 ] && peer_args+=(--inference)

plexus_args=(--steps "$steps" --warmup "$warmup" --json)
if [ "$inference" = 1 ]; then
    plexus_args+=(--inference-batch 256 --inference-runs 20)
else
    plexus_args+=(--inference-batch 0)
fi
[ -n "$backends" ] && plexus_args+=(--backends "$backends")

for m in "${models[@]}"; do
    for ((r = 1; r <= repeat; r++)); do
        echo "compare.sh: $m, run $r of $repeat: plexus bench" >&2
        "${plexus_env[@]}" "$PLEXUS" bench --model "$m" "${plexus_args[@]}" \
            >"$tmp/p.out" 2>"$tmp/p.err" </dev/null
        record plexus "$m" "$r" bench "$tmp/p.out" "$tmp/p.err" $?
        echo "compare.sh: $m, run $r of $repeat: pytorch" >&2
        if [ -x "$PEER_PYTHON" ]; then
            "${peer_env[@]}" "$PEER_PYTHON" "$here/peer_torch.py" "$m" "${peer_args[@]}" \
                >"$tmp/t.out" 2>"$tmp/t.err" </dev/null
            rc=$?
        else
            echo "{\"skipped\": \"no $PEER_PYTHON (install python3-torch)\"}" >"$tmp/t.out"
            : >"$tmp/t.err"
            rc=0
        fi
        record pytorch "$m" "$r" train "$tmp/t.out" "$tmp/t.err" $rc
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -n "$json_out" ]; then
    cp "$results" "$json_out" || exit 1
fi

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
"$fmt_python" - "$results" "$steps" "$warmup" "$threads" "$repeat" "${cpu:-unknown CPU}" "$(nproc)" \
    "${coretype:-none}" "$coretype_src" "$load_before" "$load_after" "$inference" <<'PYEOF'
import json, sys
(path, steps, warmup, threads, repeat, cpu, ncpu, coretype, coretype_src,
 load_before, load_after, inference) = sys.argv[1:13]
recs = [json.loads(l) for l in open(path) if l.strip()]
models = []
for r in recs:
    if r["model"] not in models:
        models.append(r["model"])


def results(model, side):
    return [r["result"] for r in recs
            if r["model"] == model and r["side"] == side
            and isinstance(r.get("result"), dict) and "skipped" not in r["result"]]


def configs(model):
    """Plexus configurations in the order plexus bench reported them, auto last."""
    names = []
    for res in results(model, "plexus"):
        for k in res:
            if k not in names:
                names.append(k)
    return [k for k in names if k != "auto"] + (["auto"] if "auto" in names else [])


def best(vals, lower_is_better):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return min(vals) if lower_is_better else max(vals)


def plexus_best(model, config, key, lower_is_better):
    return best([res.get(config, {}).get(key) for res in results(model, "plexus")
                 if "error" not in res.get(config, {})], lower_is_better)


def torch_best(model, key, lower_is_better):
    return best([res.get(key) for res in results(model, "pytorch")], lower_is_better)


def why(model, side, config=None):
    for r in recs:
        if r["model"] == model and r["side"] == side:
            res = r.get("result")
            if isinstance(res, dict) and "skipped" in res:
                return "skipped: " + res["skipped"].replace("|", "\\|")
            if isinstance(res, dict) and config and "error" in res.get(config, {}):
                return "failed: " + res[config]["error"].replace("|", "\\|")
            if "error" in r:
                return "failed: " + r["error"].replace("|", "\\|")
    return "n/a"


def num(v):
    if v is None:
        return None
    if v >= 1000:
        return "{:,.0f}".format(v)
    return "{:.3g}".format(v)


def name_of(model):
    return model.rsplit("/", 1)[-1]


torch_info = next((results(m, "pytorch")[0] for m in models if results(m, "pytorch")), {})
print("## Plexus vs PyTorch: training steps (bench/compare.sh)")
print()
print("- machine: %s, %s CPUs online; load average %s before, %s after" % (cpu, ncpu, load_before, load_after))
core_seen = torch_info.get("openblas_corename")
print("- OpenBLAS kernels: %s (%s)%s" % (coretype, coretype_src,
      "; PyTorch's OpenBLAS reports %s" % core_seen if core_seen else ""))
if torch_info:
    print("- PyTorch %s: %s threads, OMP_NUM_THREADS=%s, OPENBLAS_NUM_THREADS=%s, OMP_WAIT_POLICY=%s, oneDNN %s"
          % (torch_info.get("torch_version"), torch_info.get("threads"), torch_info.get("omp_num_threads"),
             torch_info.get("openblas_num_threads"), torch_info.get("omp_wait_policy"),
             "on" if torch_info.get("mkldnn") else "off"))
print("- Plexus: PLEXUS_NUM_THREADS=%s, `plexus bench --model MODEL --steps %s --warmup %s --json`: each backend"
      % (threads, steps, warmup))
print("  ranked first (cpu_blas for the ops it lacks), and auto = no ranking, the router's choice")
print("- %s timed steps per run after %s warm-up steps on both sides, best of %s run%s per side and configuration"
      % (steps, warmup, repeat, "" if repeat == "1" else "s"))
print("- ratio = Plexus auto time / PyTorch time: < 1 means Plexus is faster")
print()
for m in models:
    cfgs = configs(m) or ["auto"]
    print("### %s" % name_of(m))
    print()
    try:
        batch = json.load(open(m)).get("training", {}).get("batch_size", 64)
    except (OSError, ValueError):
        batch = "?"
    print("Training, batch %s:" % batch)
    print()
    print("| | " + " | ".join("Plexus " + c for c in cfgs) + " | PyTorch |")
    print("|---|" + "---:|" * (len(cfgs) + 1))
    t_eps = torch_best(m, "examples_per_second", False)
    t_spe = torch_best(m, "seconds_per_epoch", True)
    row = [num(plexus_best(m, c, "examples_per_second", False)) or why(m, "plexus", c) for c in cfgs]
    print("| examples/s | " + " | ".join(row) + " | %s |" % (num(t_eps) or why(m, "pytorch")))
    row = [num(plexus_best(m, c, "ms_per_step", True)) or "-" for c in cfgs]
    t_train = torch_best(m, "train_seconds", True)
    print("| ms/step (mean) | " + " | ".join(row) + " | %s |" % (num(t_train and 1e3 * t_train / int(steps)) or "-"))
    row = [num(plexus_best(m, c, "ms_per_step_median", True)) or "-" for c in cfgs]
    t_med = torch_best(m, "step_seconds_median", True)
    print("| ms/step (median) | " + " | ".join(row) + " | %s |" % (num(t_med and 1e3 * t_med) or "-"))
    row = [num(plexus_best(m, c, "seconds_per_epoch", True)) or "-" for c in cfgs]
    print("| s/epoch | " + " | ".join(row) + " | %s |" % (num(t_spe) or "-"))
    p_auto = plexus_best(m, "auto", "examples_per_second", False)
    ratio = "{:.2f}".format(t_eps / p_auto) if p_auto and t_eps else "n/a"
    print()
    print("ratio (Plexus auto time / PyTorch time): **%s**" % ratio)
    if inference == "1":
        print()
        print("Inference, batch 256, images/s (forward passes only on both sides):")
        print()
        print("| | " + " | ".join("Plexus " + c for c in cfgs) + " | PyTorch |")
        print("|---|" + "---:|" * (len(cfgs) + 1))
        t_ips = torch_best(m, "inference_images_per_second", False)
        row = [num(plexus_best(m, c, "inference_images_per_second", False)) or why(m, "plexus", c) for c in cfgs]
        print("| images/s | " + " | ".join(row) + " | %s |" % (num(t_ips) or why(m, "pytorch")))
        p_ips = plexus_best(m, "auto", "inference_images_per_second", False)
        print()
        print("ratio (Plexus auto time / PyTorch time): **%s**"
              % ("{:.2f}".format(t_ips / p_ips) if p_ips and t_ips else "n/a"))
    print()
PYEOF
