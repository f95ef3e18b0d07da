#!/usr/bin/python3
"""peer_torch.py -- the same model file, trained in PyTorch, timed the way
`plexus train --json` times itself (bench/README.md).

    /usr/bin/python3 bench/peer_torch.py MODEL.json [--steps N] [--warmup W]
        [--threads T] [--data DIR] [--limit-train N] [--inference]
        [--inference-batch B] [--inference-steps N]

Reads a Plexus model file (docs/model-format.md), builds the equivalent
torch.nn graph (each layer a module named after it, parameters
"mods.<layer>.weight"), the same loss, optimizer and
batch size, and trains on the same Fashion-MNIST IDX data with the same
normalization. After W warm-up steps it times N training steps
(zero_grad + forward + loss + backward + optimizer step, and reading the
loss back), each batch already in a tensor, as Plexus times only its plan
run. It prints ONE JSON line on stdout:

    seconds_per_epoch    mean step time * steps per epoch (drop_last, after
                         the validation split and --limit-train)
    examples_per_second  batch_size * N / time of the N steps
    inference_images_per_second  (with --inference) forward passes in eval
                         mode under no_grad at batch 256

Not reproduced, because they are not timed on the Plexus side either:
the learning-rate schedule (a scalar per step), augmentation and shuffling
(data pipeline, outside the timed region). Weight init is PyTorch's default.

Environment, each only when not already set, before torch is imported:
OMP_NUM_THREADS=T (T: --threads, default $PLEXUS_NUM_THREADS, else 2; also
torch.set_num_threads(T)), OPENBLAS_NUM_THREADS=1 (torch runs its own
parallel regions around BLAS calls), and OPENBLAS_CORETYPE chosen from the
CPU's flags exactly as Plexus's runtime/cpu_tune.c does, so both use the
same OpenBLAS kernels (PLEXUS_OPENBLAS_CORETYPE=keep opts out, as there).
OMP_WAIT_POLICY=passive (libgomp's spin-waiting collapses on a busy
machine; Plexus's pool sleeps on condition variables too; README).

If torch cannot be imported, or the model uses something this script does
not know, it prints {"skipped": "..."} and exits 0: a report, not a failure.
Exit 2 is for bad arguments or an unreadable model file.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
IDX_DEFAULTS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class Skip(Exception):
    """Something this peer cannot reproduce: reported as {"skipped": ...}."""


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
    sys.stdout.flush()


def skip(reason, **extra):
    out = {"skipped": reason, "framework": "pytorch"}
    out.update(extra)
    emit(out)
    sys.exit(0)


# ---- arguments and threads (before torch is imported) ----------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="peer_torch.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="Plexus model file (JSON)")
    ap.add_argument("--steps", type=int, default=50, help="timed training steps (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    env_threads = os.environ.get("PLEXUS_NUM_THREADS", "")
    ap.add_argument("--threads", type=int, default=int(env_threads) if env_threads.isdigit() else 2,
                    help="torch.set_num_threads (default $PLEXUS_NUM_THREADS, else 2)")
    ap.add_argument("--data", help="data directory (overrides the model file's data.dir)")
    ap.add_argument("--limit-train", type=int, default=0,
                    help="use the first N training examples, as plexus train --limit-train")
    ap.add_argument("--inference", action="store_true", help="also time inference (eval mode, no_grad)")
    ap.add_argument("--inference-batch", type=int, default=256, help="inference batch (default 256)")
    ap.add_argument("--inference-steps", type=int, default=20, help="timed inference batches (default 20)")
    a = ap.parse_args(argv)
    for name in ("steps", "threads", "inference_batch", "inference_steps"):
        if getattr(a, name) < 1:
            ap.error("--%s must be >= 1" % name.replace("_", "-"))
    if a.warmup < 0 or a.limit_train < 0:
        ap.error("--warmup and --limit-train must be >= 0")
    return a


def cpu_coretype():
    """The OpenBLAS kernel family Plexus's runtime/cpu_tune.c picks from the
    CPU's features (Debian's OpenBLAS 0.3.21 falls back to its slow generic
    "Prescott" kernels on CPUs newer than itself)."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return None
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def set_thread_env(threads):
    # libgomp and OpenBLAS read these when they are loaded, i.e. at import.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    # libgomp's default spin-waiting makes every parallel region crawl when
    # another process holds the cores (7x slower steps seen on a 2-core box
    # shared with a training run); Plexus's pool waits on condition
    # variables, so passive is the like-for-like setting.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    # The same OpenBLAS kernels as Plexus (same rule, same opt-out).
    if "OPENBLAS_CORETYPE" not in os.environ and os.environ.get("PLEXUS_OPENBLAS_CORETYPE") != "keep":
        ct = cpu_coretype()
        if ct:
            os.environ["OPENBLAS_CORETYPE"] = ct


def openblas_info():
    """(config, corename) of the OpenBLAS loaded in this process, or Nones."""
    try:
        import ctypes
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_config().decode(), lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None, None


# ---- data ----------------------------------------------------------------

def open_maybe_gz(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                head = f.read(2)
            return gzip.open(p, "rb") if head == b"\x1f\x8b" else open(p, "rb")
    raise FileNotFoundError(path + "[.gz]")


def read_idx(path):
    """An unsigned-byte IDX file as (numpy uint8 array or bytes, shape)."""
    with open_maybe_gz(path) as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08:
            raise Skip("%s: not an unsigned-byte IDX file" % path)
        ndim = magic[3]
        shape = struct.unpack(">%dI" % ndim, f.read(4 * ndim))
        raw = f.read()
    count = 1
    for d in shape:
        count *= d
    if len(raw) < count:
        raise Skip("%s: truncated (%d of %d bytes)" % (path, len(raw), count))
    return raw[:count], shape


def load_train_data(spec, args, torch):
    """(images float32 [n, *input_shape], labels int64 [n], n_train, source)."""
    training = spec.get("training", {})
    data = training.get("data")
    in_shape = tuple(spec["input"]["shape"])
    if data is None or data.get("format", "idx") != "idx":
        raise Skip("only IDX data is reproduced (the model's data is %s)" % (
            "absent" if data is None else "format " + str(data.get("format"))))
    d = args.data or data.get("dir") or "."
    img_raw, img_shape = read_idx(os.path.join(d, data.get("train_images", IDX_DEFAULTS["train_images"])))
    lab_raw, lab_shape = read_idx(os.path.join(d, data.get("train_labels", IDX_DEFAULTS["train_labels"])))
    n = img_shape[0]
    if lab_shape[0] != n:
        raise Skip("train images and labels disagree: %d vs %d" % (n, lab_shape[0]))
    per = len(img_raw) // n
    want = 1
    for s in in_shape:
        want *= s
    if per != want:
        raise Skip("IDX records hold %d values, the model input %s needs %d" % (per, list(in_shape), want))
    x = torch.frombuffer(bytearray(img_raw), dtype=torch.uint8).reshape((n,) + in_shape).float().div_(255.0)
    y = torch.frombuffer(bytearray(lab_raw), dtype=torch.uint8).long()
    if args.limit_train:
        x, y = x[: args.limit_train], y[: args.limit_train]
        n = x.shape[0]
    # The validation split holds out round(n * fraction) examples (Plexus's
    # dataset_split); which ones does not matter for timing.
    frac = float(training.get("validation_split", 0.0))
    n_val = int(math.floor(n * frac + 0.5))
    n_train = n - n_val
    g = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    order = torch.randperm(n, generator=g)
    x, y = x[order[:n_train]], y[order[:n_train]]
    norm = data.get("normalize")
    if norm is True:
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dim=dims).tolist() if x.dim() > 2 else [x.mean().item()]
        std = x.std(dim=dims).tolist() if x.dim() > 2 else [x.std().item()]
    elif isinstance(norm, dict):
        mean, std = norm.get("mean", [0.0]), norm.get("std", [1.0])
    else:
        mean, std = None, None
    if mean is not None:
        c = in_shape[0] if len(in_shape) >= 2 else 1
        view = (1, -1) + (1,) * (len(in_shape) - 1) if len(in_shape) >= 2 else (1, -1)
        m = torch.tensor(mean if len(mean) > 1 else mean * c, dtype=torch.float32).reshape(view)
        s = torch.tensor(std if len(std) > 1 else std * c, dtype=torch.float32).reshape(view)
        x = (x - m) / s
    return x.contiguous(), y, n_train, "idx:" + d


# ---- model ---------------------------------------------------------------

def pair(v, default=None):
    if v is None or v == []:
        v = default
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


KNOWN = {"dense", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "flatten", "batch_norm",
         "layer_norm", "dropout", "embedding", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh",
         "softmax", "log_softmax", "add", "concat"}


def build_model(spec, torch, nn):
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        raise Skip("the model file has no layers")
    in_shape = tuple(spec["input"]["shape"])

    class PlexusNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = nn.ModuleDict()
            self.plan = []  # (name, type, inputs, cfg)
            self.output = None

        def forward(self, x):
            vals = {"input": x}
            last = "input"
            for name, kind, inputs, cfg in self.plan:
                xs = [vals[i] for i in inputs]
                if kind == "add":
                    out = xs[0]
                    for t in xs[1:]:
                        out = out + t
                elif kind == "concat":
                    out = torch.cat(xs, dim=int(cfg.get("axis", 1)))
                else:
                    out = self.mods[name](xs[0])
                vals[name] = out
                last = name
            return vals[self.output or last]

    net = PlexusNet()
    # Shapes are found by running each new layer on a small example batch.
    probe = {"input": torch.zeros((2,) + in_shape)}
    prev = "input"
    with torch.no_grad():
        for i, L in enumerate(layers):
            kind = L.get("type")
            if kind not in KNOWN:
                raise Skip("layer %d: type %r has no PyTorch equivalent here" % (i, kind))
            name = L.get("name") or "%s_%d" % (kind, i)
            inputs = L.get("inputs") or [prev]
            for src in inputs:
                if src not in probe:
                    raise Skip("layer %s: unknown input %r" % (name, src))
            x = probe[inputs[0]]
            mod = None
            if kind == "dense":
                mod = nn.Linear(x.shape[-1], int(L["units"]), bias=bool(L.get("use_bias", True)))
            elif kind == "conv2d":
                mod = nn.Conv2d(x.shape[1], int(L["filters"]), pair(L["kernel"]), stride=pair(L.get("stride"), 1),
                                padding=pair(L.get("padding"), 0), dilation=pair(L.get("dilation"), 1),
                                groups=int(L.get("groups", 1)), bias=bool(L.get("use_bias", True)))
            elif kind == "max_pool2d":
                k = pair(L["kernel"])
                mod = nn.MaxPool2d(k, stride=pair(L.get("stride"), k), padding=pair(L.get("padding"), 0),
                                   dilation=pair(L.get("dilation"), 1), ceil_mode=bool(L.get("ceil_mode", False)))
            elif kind == "avg_pool2d":
                k = pair(L["kernel"])
                mod = nn.AvgPool2d(k, stride=pair(L.get("stride"), k), padding=pair(L.get("padding"), 0),
                                   ceil_mode=bool(L.get("ceil_mode", False)),
                                   count_include_pad=bool(L.get("count_include_pad", True)))
            elif kind == "global_avg_pool2d":
                mod = nn.AdaptiveAvgPool2d(1)
            elif kind == "flatten":
                mod = nn.Flatten(int(L.get("start_dim", 1)), int(L.get("end_dim", -1)))
            elif kind == "dropout":
                mod = nn.Dropout(float(L.get("p", 0.5)))
            elif kind == "batch_norm":
                cls = nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm3d if x.dim() == 5 else nn.BatchNorm1d
                mod = cls(x.shape[1], eps=float(L.get("eps", 1e-5)), momentum=float(L.get("momentum", 0.1)))
            elif kind == "layer_norm":
                dims = int(L.get("normalized_dims", 1))
                mod = nn.LayerNorm(tuple(x.shape[-dims:]), eps=float(L.get("eps", 1e-5)))
            elif kind == "embedding":
                pad = int(L.get("padding_idx", -1))
                mod = nn.Embedding(int(L["num_embeddings"]), int(L["embedding_dim"]),
                                   padding_idx=pad if pad >= 0 else None)
            elif kind == "relu":
                mod = nn.ReLU()
            elif kind == "leaky_relu":
                mod = nn.LeakyReLU(float(L.get("negative_slope", 0.01)))
            elif kind == "elu":
                mod = nn.ELU(float(L.get("alpha", 1.0)))
            elif kind == "gelu":
                mod = nn.GELU(approximate=str(L.get("approximate", "none")))
            elif kind == "sigmoid":
                mod = nn.Sigmoid()
            elif kind == "tanh":
                mod = nn.Tanh()
            elif kind == "softmax":
                mod = nn.Softmax(dim=int(L.get("axis", -1)))
            elif kind == "log_softmax":
                mod = nn.LogSoftmax(dim=int(L.get("axis", -1)))
            if mod is not None:
                if name in net.mods:
                    raise Skip("two layers are named %r" % name)
                net.mods[name] = mod
                mod.eval()
                out = mod(x)
            elif kind == "add":
                out = probe[inputs[0]]
                for src in inputs[1:]:
                    out = out + probe[src]
            else:  # concat
                out = torch.cat([probe[s] for s in inputs], dim=int(L.get("axis", 1)))
            net.plan.append((name, kind, list(inputs), L))
            probe[name] = out
            prev = name
    net.output = spec.get("output") or prev
    if net.output not in probe:
        raise Skip("output layer %r not found" % net.output)
    classes = int(spec.get("classes", 0))
    oshape = tuple(probe[net.output].shape)
    if classes and oshape != (2, classes):
        raise Skip("the output layer gives %s per batch of 2, expected [2, %d]" % (list(oshape), classes))
    net.train()
    return net


# ---- loss and optimizer ---------------------------------------------------

def make_loss(training, classes, torch, nn):
    loss = training.get("loss", "cross_entropy")
    cfg = loss if isinstance(loss, dict) else {"type": loss}
    kind = cfg.get("type", "cross_entropy")
    F = torch.nn.functional
    if kind == "cross_entropy":
        ce = nn.CrossEntropyLoss(label_smoothing=float(cfg.get("label_smoothing", 0.0)))
        return lambda out, y: ce(out, y)
    crit = {"bce": nn.BCEWithLogitsLoss(), "mse": nn.MSELoss(), "mae": nn.L1Loss(),
            "huber": nn.HuberLoss(delta=float(cfg.get("delta", 1.0)))}.get(kind)
    if crit is None:
        raise Skip("loss %r is not reproduced" % kind)
    return lambda out, y: crit(out, F.one_hot(y, classes).to(out.dtype))


def make_optimizer(training, params, torch):
    o = training.get("optimizer") or {"type": "adam"}
    kind = o.get("type", "adam")
    lr = o.get("lr")
    wd = float(o.get("weight_decay", 0.01 if kind == "adamw" else 0.0))
    betas = tuple(o.get("betas", (0.9, 0.999)))
    opt = torch.optim
    if kind == "sgd":
        return opt.SGD(params, lr=float(lr if lr is not None else 0.01), momentum=float(o.get("momentum", 0.0)),
                       dampening=float(o.get("dampening", 0.0)), nesterov=bool(o.get("nesterov", False)),
                       weight_decay=wd)
    if kind in ("adam", "adamw"):
        cls = opt.Adam if kind == "adam" else opt.AdamW
        return cls(params, lr=float(lr if lr is not None else 1e-3), betas=betas, eps=float(o.get("eps", 1e-8)),
                   weight_decay=wd, amsgrad=bool(o.get("amsgrad", False)))
    if kind == "rmsprop":
        return opt.RMSprop(params, lr=float(lr if lr is not None else 1e-2), alpha=float(o.get("alpha", 0.99)),
                           eps=float(o.get("eps", 1e-8)), weight_decay=wd, momentum=float(o.get("momentum", 0.0)),
                           centered=bool(o.get("centered", False)))
    if kind == "adagrad":
        return opt.Adagrad(params, lr=float(lr if lr is not None else 1e-2), lr_decay=float(o.get("lr_decay", 0.0)),
                           weight_decay=wd, eps=float(o.get("eps", 1e-10)))
    raise Skip("optimizer %r is not reproduced" % kind)


# ---- main ----------------------------------------------------------------

def main(argv):
    args = parse_args(argv)
    try:
        with open(args.model, "r") as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write("peer_torch.py: %s: %s\n" % (args.model, e))
        return 2
    set_thread_env(args.threads)
    try:
        import torch
        import torch.nn as nn
    except Exception as e:  # ImportError, or a broken install
        skip("PyTorch is not importable by %s: %s" % (sys.executable, e))
    torch.set_num_threads(args.threads)
    torch.manual_seed(int(spec.get("seed", 0)))
    if "input" not in spec or "shape" not in spec.get("input", {}):
        skip("the model file has no input.shape")
    training = spec.get("training") or {}
    B = int(training.get("batch_size", 64))
    classes = int(spec.get("classes", 0))
    try:
        x_all, y_all, n_train, source = load_train_data(spec, args, torch)
        model = build_model(spec, torch, nn)
        loss_fn = make_loss(training, classes, torch, nn)
        frozen = set(training.get("freeze") or [])
        params = []
        for pname, p in model.named_parameters():  # "mods.<layer>.<param>"
            if pname.split(".")[1] in frozen:
                p.requires_grad_(False)
            else:
                params.append(p)
        optimizer = make_optimizer(training, params, torch)
    except Skip as e:
        skip(str(e))
    except FileNotFoundError as e:
        skip("data not found: %s" % e)
    steps_per_epoch = n_train // B
    if steps_per_epoch < 1:
        skip("fewer training examples (%d) than one batch (%d)" % (n_train, B))
    clip = training.get("gradient_clipping") or {}
    l1, l2 = float(training.get("l1", 0.0)), float(training.get("l2", 0.0))

    # Batches are cut before timing (Plexus copies each into its input
    # tensor outside the timed region too), cycling through the data.
    total = args.warmup + args.steps
    n_batches = min(total, steps_per_epoch)
    batches = [(x_all[i * B:(i + 1) * B].contiguous(), y_all[i * B:(i + 1) * B].contiguous())
               for i in range(n_batches)]

    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        if l1 or l2:
            with torch.no_grad():
                for p in params:
                    if l2:
                        p.grad.add_(p, alpha=l2)
                    if l1:
                        p.grad.add_(torch.sign(p), alpha=l1)
        if "norm" in clip:
            torch.nn.utils.clip_grad_norm_(params, float(clip["norm"]))
        if "value" in clip:
            torch.nn.utils.clip_grad_value_(params, float(clip["value"]))
        optimizer.step()
        return loss.item()

    model.train()
    losses = []
    for i in range(args.warmup):
        losses.append(step(*batches[i % n_batches]))
    times = []
    for i in range(args.warmup, total):
        xb, yb = batches[i % n_batches]
        t0 = time.perf_counter()
        losses.append(step(xb, yb))
        times.append(time.perf_counter() - t0)
    if not all(math.isfinite(v) for v in losses):
        skip("the loss became non-finite", losses=losses[-5:])
    train_seconds = sum(times)
    blas_config, blas_core = openblas_info()
    srt = sorted(times)
    out = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "model": spec.get("name", "model"),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openblas_config": blas_config,
        "openblas_corename": blas_core,
        "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "data": source,
        "train_examples": n_train,
        "batch_size": B,
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "train_seconds": train_seconds,
        "step_seconds_median": srt[len(srt) // 2],
        "step_seconds_min": srt[0],
        "seconds_per_epoch": train_seconds / args.steps * steps_per_epoch,
        "examples_per_second": B * args.steps / train_seconds if train_seconds > 0 else None,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    if args.inference:
        model.eval()
        IB = args.inference_batch
        reps = (IB + x_all.shape[0] - 1) // x_all.shape[0]
        xi = (x_all if reps == 1 else x_all.repeat((reps,) + (1,) * (x_all.dim() - 1)))[:IB].contiguous()
        with torch.no_grad():
            for _ in range(3):
                model(xi)
            t0 = time.perf_counter()
            for _ in range(args.inference_steps):
                model(xi)
            dt = time.perf_counter() - t0
        out["inference_batch"] = IB
        out["inference_steps"] = args.inference_steps
        out["inference_images_per_second"] = IB * args.inference_steps / dt if dt > 0 else None
    emit(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
