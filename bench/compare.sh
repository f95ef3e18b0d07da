#!/bin/bash
# compare.sh — Plexus vs PyTorch on the same model file (bench/README.md).
#
#   bench/compare.sh MODEL.json [MODEL.json ...] [--steps N] [--warmup W]
#                    [--threads T] [--repeat R] [--inference] [--json FILE]
#
# For each model: `plexus train MODEL --max-steps N --limit-test 1 --json`
# and `bench/peer_torch.py MODEL --steps N` (PyTorch, after W untimed
# warm-up steps), R times alternating, best of R per side (interference on a
# shared machine only slows a run down). Prints a Markdown table: seconds per
# epoch, examples/s and the ratio Plexus time / PyTorch time (< 1: Plexus is
# faster), with the machine, the OpenBLAS kernels and the thread count.
# --inference adds inference images/s at batch 256: PyTorch's from
# peer_torch.py; Plexus's from wall-clock `plexus eval` of the whole test set
# minus one of 256 images (start-up, planning and data loading cancel out;
# decoding per image does not). --json FILE also writes every raw result.
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
    echo "                        [--repeat R] [--inference] [--json FILE]" >&2
    exit 2
}

steps=30 warmup=5 threads=${PLEXUS_NUM_THREADS:-2} repeat=1 inference=0 json_out=""
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
    rec["result"] = json.loads(lines[-1]) if kind == "train" else float(lines[-1])
except (IndexError, ValueError):
    tail = [l for l in open(err, errors="replace").read().splitlines() if l.strip()][-3:]
    rec["error"] = " / ".join(tail) or "no output (exit %s)" % rc
print(json.dumps(rec))
EOF
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
plexus_env=(env -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS PLEXUS_NUM_THREADS="$threads")
peer_env=(env PLEXUS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS=1
          OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}")
if [ -n "$coretype" ]; then
    plexus_env+=(OPENBLAS_CORETYPE="$coretype")
    peer_env+=(OPENBLAS_CORETYPE="$coretype")
fi
peer_args=(--steps "$steps" --warmup "$warmup" --threads "$threads")
[ "$inference" = 1 ] && peer_args+=(--inference)

# timed OUT ERR CMD...: runs CMD (stdout to OUT, stderr to ERR); prints its
# wall-clock seconds, returns its status.
timed() {
    local out=$1 err=$2 t0 t1 rc
    shift 2
    t0=$EPOCHREALTIME
    "$@" >"$out" 2>"$err" </dev/null
    rc=$?
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
    return $rc
}

for m in "${models[@]}"; do
    for ((r = 1; r <= repeat; r++)); do
        echo "compare.sh: $m, run $r of $repeat: plexus train" >&2
        "${plexus_env[@]}" "$PLEXUS" train "$m" --max-steps "$steps" --limit-test 1 --json \
            >"$tmp/p.out" 2>"$tmp/p.err" </dev/null
        record plexus "$m" "$r" train "$tmp/p.out" "$tmp/p.err" $?
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
        if [ "$inference" = 1 ]; then
            echo "compare.sh: $m, run $r of $repeat: plexus eval (inference)" >&2
            small=$(timed "$tmp/e1.out" "$tmp/e1.err" "${plexus_env[@]}" "$PLEXUS" eval "$m" --limit 256 --json)
            rc=$?
            big=""
            if [ $rc = 0 ]; then
                big=$(timed "$tmp/e2.out" "$tmp/e2.err" "${plexus_env[@]}" "$PLEXUS" eval "$m" --json)
                rc=$?
            fi
            "$fmt_python" - "$m" "$r" "$rc" "$small" "$big" "$tmp/e2.out" "$tmp/e1.err" "$tmp/e2.err" \
                >>"$results" <<'PYEOF'
import json, sys
model, run, rc, small, big, out, err1, err2 = sys.argv[1:9]
rec = {"side": "plexus", "model": model, "run": int(run), "kind": "inference", "rc": int(rc)}
try:
    n = json.loads(open(out).read().splitlines()[-1])["examples"]
    dt = float(big) - float(small)
    rec["result"] = {"images": n, "seconds_full": float(big), "seconds_256": float(small),
                     "inference_images_per_second": (n - 256) / dt if dt > 0 and n > 256 else None}
except (IndexError, ValueError, KeyError, OSError):
    tail = []
    for e in (err1, err2):
        try:
            tail += [l for l in open(e, errors="replace").read().splitlines() if l.strip()]
        except OSError:
            pass
    rec["error"] = " / ".join(tail[-3:]) or "plexus eval failed (exit %s)" % rc
print(json.dumps(rec))
PYEOF
        fi
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


def results(model, side, kind):
    return [r["result"] for r in recs
            if r["model"] == model and r["side"] == side and r["kind"] == kind
            and isinstance(r.get("result"), dict) and "skipped" not in r["result"]]


def best(model, side, kind, key, lower_is_better):
    vals = [x[key] for x in results(model, side, kind) if x.get(key) is not None]
    if not vals:
        return None
    return min(vals) if lower_is_better else max(vals)


def why(model, side, kind):
    for r in recs:
        if r["model"] == model and r["side"] == side and r["kind"] == kind:
            res = r.get("result")
            if isinstance(res, dict) and "skipped" in res:
                return "skipped: " + res["skipped"].replace("|", "\\|")
            if "error" in r:
                return "failed: " + r["error"].replace("|", "\\|")
    return "n/a"


def num(v):
    if v is None:
        return None
    if v >= 1000:
        return "{:,.0f}".format(v)
    return "{:.3g}".format(v)


torch_info = next((results(m, "pytorch", "train")[0] for m in models if results(m, "pytorch", "train")), {})
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
print("- Plexus: PLEXUS_NUM_THREADS=%s, `plexus train MODEL --max-steps %s --limit-test 1 --json`" % (threads, steps))
print("- %s timed steps per run (PyTorch after %s warm-up steps; Plexus times all of its), best of %s run%s per side"
      % (steps, warmup, repeat, "" if repeat == "1" else "s"))
print("- ratio = Plexus time / PyTorch time: < 1 means Plexus is faster")
print()
print("| model | batch | Plexus s/epoch | PyTorch s/epoch | Plexus examples/s | PyTorch examples/s | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m in models:
    p_spe = best(m, "plexus", "train", "seconds_per_epoch", True)
    t_spe = best(m, "pytorch", "train", "seconds_per_epoch", True)
    p_eps = best(m, "plexus", "train", "examples_per_second", False)
    t_eps = best(m, "pytorch", "train", "examples_per_second", False)
    try:
        batch = json.load(open(m)).get("training", {}).get("batch_size", 64)
    except (OSError, ValueError):
        batch = "?"
    ratio = "{:.2f}".format(t_eps / p_eps) if p_eps and t_eps else "n/a"
    print("| %s | %s | %s | %s | %s | %s | %s |" % (
        m.rsplit("/", 1)[-1], batch, num(p_spe) or why(m, "plexus", "train"),
        num(t_spe) or why(m, "pytorch", "train"), num(p_eps) or "-", num(t_eps) or "-", ratio))
if inference == "1":
    print()
    print("Inference at batch 256, images/s. Plexus: wall-clock of `plexus eval` on the whole test set minus")
    print("`--limit 256` (so it includes decoding and normalizing the inputs); PyTorch: forward passes only.")
    print()
    print("| model | Plexus images/s | PyTorch images/s | ratio |")
    print("|---|---:|---:|---:|")
    for m in models:
        p = best(m, "plexus", "inference", "inference_images_per_second", False)
        t = best(m, "pytorch", "train", "inference_images_per_second", False)
        ratio = "{:.2f}".format(t / p) if p and t else "n/a"
        print("| %s | %s | %s | %s |" % (m.rsplit("/", 1)[-1], num(p) or why(m, "plexus", "inference"),
                                         num(t) or why(m, "pytorch", "train"), ratio))
PYEOF
