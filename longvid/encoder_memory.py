"""Activation memory and train-step time of the video encoder (ViT-Tiny geometry) vs. HF ViViT / VideoMAE.

    python -m longvid.encoder_memory                 # full grid: frames 16,32,64,128 (~1 h on 2 cores)
    python -m longvid.encoder_memory --quick         # frames 16,32, fewer steps (a few minutes)
    python -m longvid.encoder_memory --frames 64 128 --steps 5 --skip 'ours/factorized/*/f128'

Geometry: width 192, 12 layers, 3 heads, MLP 768, 112x112 frames, 16x16 patches, 2-frame tubelets (49
tokens per tubelet step), batch 2, fp32, CPU, torch's default thread count. One *train step* = forward +
backward of `embedding.square().mean()` (peers: mean-pooled last hidden state); no optimizer, so no
optimizer state is counted anywhere.

Grid (ours): frames x mask ratio {0, 0.5, 0.75} x attention {joint, factorized} x tuning:
  full               every parameter used by the video path is trained (the 2D image patch conv is unused
                     by videos and frozen everywhere);
  last4              requires_grad=False on everything except the last 4 blocks, the final norm, the
                     projection and the tubelet Conv3d. Because the Conv3d sits *below* the 8 frozen blocks,
                     its gradient has to flow back through them: autograd records their graph anyway (only
                     the tensors needed for weight gradients are dropped: LayerNorm outputs, the MLP hidden
                     after GELU, the attention output before `proj`);
  last4_ckpt         the same gradients, but each frozen block runs under non-reentrant activation
                     checkpointing, so only its input is kept and its graph is rebuilt during backward
                     (costs one extra forward of the 8 frozen blocks);
  last4_frozen_stem  the Conv3d frozen too: nothing before block 9 requires grad, so autograd records no
                     graph there at all (this is the only variant where the frozen part is free; the tubelet
                     then receives no gradient).
Peers at the same geometry, randomly initialised from configs (no downloads), attn_implementation="sdpa":
  vivit     transformers VivitModel, unmasked (its defaults: CLS token, hidden_act="gelu_fast", pooler);
  vivit_gelu  the same with hidden_act="gelu" (the exact GELU we use): separates "our code" from "HF's
            gelu_fast is a chain of elementwise ops that autograd saves one by one" (informational row);
  videomae  transformers VideoMAEModel with 75% random token masking through `bool_masked_pos`.

How memory is measured (CPU has no allocator statistics like torch.cuda.max_memory_allocated):
every configuration runs in a fresh child python. The child builds the model and the input, pre-allocates
the gradients of trainable parameters, and runs one warm-up step (also used to count FLOPs and to read the
autograd graph, below). Then it frees everything, calls glibc `malloc_trim(0)` so freed heap pages go back
to the OS, reads VmRSS as the baseline (= interpreter + model + gradients + input), resets the kernel's peak
RSS counter (`echo 5 > /proc/self/clear_refs` resets VmHWM), runs one step and reads VmHWM.
    act_peak_MB = VmHWM - baseline   (activations + backward temporaries + allocator slack)
This is exact from the OS's point of view, unlike `ru_maxrss`, which can never be reset and so would
include construction/warm-up peaks. Parameter and gradient memory are in the baseline and reported on
their own (`params_grads_MB`). Independently of the allocator, `saved_MB` sums the unique storages that
the autograd graph holds at the end of the forward (read through the `_saved_*` attributes of every graph
node; parameters and the input excluded), with a per-op breakdown in the CSV/JSON. For `last4_ckpt` that
figure is not read (unpacking checkpointed tensors would trigger their recomputation).

Time: on a shared 2-core machine use one thread per child (--threads, chosen automatically from the load
average): with two OpenMP threads every op waits at a barrier for a worker that another job descheduled.
With one thread, step time is the process CPU time (time.process_time: not charged while other jobs hold
the core; still perturbed by their cache traffic), otherwise wall time; wall time is kept as step_wall_s.
Median of `--steps` steps after the warm-up and the memory step (fewer if a step is slow,
see --budget). The time targets use a separate child that builds the compared models together and
interleaves their steps (A, B, A, B, ...; --ab-rounds), so load drift hits both sides alike: with other
jobs on the machine, separate runs minutes apart differed by up to 20% for the same model. FLOPs: torch.utils.flop_counter.FlopCounterMode over the warm-up step, with the CPU flash
attention ops registered (torch does not count `_scaled_dot_product_flash_attention_for_cpu`); these are
executed FLOPs (checkpoint recomputation included, masked-out attention scores included). Peak: the best
n^3 fp32 torch.matmul (n = 1024, 2048, 4096) in a child at the start, plus matmuls at the model's own GEMM
shapes and the CPU flash-attention kernel at our sequence lengths, for context; and, because that peak
drifts with what the other core runs (AVX-512 clocks, shared L3), a 1024^3 matmul peak measured inside
each config's child around its timed steps (`local_peak_gflops`), which the FLOP/s target uses.

Writes outputs/benchmarks/encoder_memory.{md,csv,json,png} and prints PASS/FAIL lines for the targets.
"""
from __future__ import annotations

import argparse
import ctypes
import fnmatch
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

GEOM = dict(image_size=112, patch_size=16, tubelet_frames=2, width=192, depth=12, heads=3, mlp_dim=768,
            embed_dim=256)
BATCH = 2
MASKS = (0.0, 0.5, 0.75)
ATTENTIONS = ("joint", "factorized")
TUNINGS = ("full", "last4", "last4_ckpt", "last4_frozen_stem")
PEER_MASK = 0.75
MB = 2 ** 20


# ----------------------------------------------------------------------------------------------- child side
def _status_mb(key: str) -> float:
    return int(re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)) / 1024


def _trim() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _flop_mapping():
    """FlopCounterMode formulas for the CPU flash-attention ops (same signatures as the CUDA flash ops)."""
    import torch
    from torch.utils.flop_counter import flop_registry
    aten = torch.ops.aten
    mapping = {}
    for cpu_op, cuda_op in ((aten._scaled_dot_product_flash_attention_for_cpu, aten._scaled_dot_product_flash_attention),
                            (aten._scaled_dot_product_flash_attention_for_cpu_backward,
                             aten._scaled_dot_product_flash_attention_backward)):
        formula = flop_registry[cuda_op]              # already wrapped to take tensors
        mapping[cpu_op] = (lambda f: lambda *a, **kw: f(*a, **kw))(formula)
        mapping[cpu_op]._get_raw = True               # so FlopCounterMode does not wrap it a second time
    return mapping


def _saved_bytes(root, exclude: set[int]) -> dict[str, int]:
    """Bytes of unique storages held by the autograd graph under `root`, keyed by the node's op name."""
    import torch
    by_op: dict[str, int] = {}
    seen_nodes, seen_storage, stack = set(), set(exclude), [root]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen_nodes:
            continue
        seen_nodes.add(fn)
        for attr in dir(fn):
            if not (attr.startswith("_saved_") or attr == "saved_tensors"):   # built-in ops | custom Functions
                continue
            try:
                val = getattr(fn, attr)
            except Exception:  # freed / not a tensor
                continue
            for t in (val if isinstance(val, (list, tuple)) else [val]):
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    if st.data_ptr() and st.data_ptr() not in seen_storage:
                        seen_storage.add(st.data_ptr())
                        name = re.sub(r"\d+$", "", fn.name())
                        by_op[name] = by_op.get(name, 0) + st.nbytes()
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return by_op


def build(spec: dict):
    """(model, input, step_fn(seed, on_graph=None) -> None, info, excluded storages). `spec` may also give
    `geom`, `batch`, `device` and `autocast` (a dtype name) — the GPU benchmark's settings."""
    import contextlib

    import torch
    from torch import nn
    from torch.utils.checkpoint import checkpoint
    F, model_name = spec["frames"], spec["model"]
    geom, batch, device = spec.get("geom", GEOM), spec.get("batch", BATCH), spec.get("device", "cpu")
    S = geom["image_size"]
    g = torch.Generator().manual_seed(0)
    amp = (torch.autocast(device, dtype=getattr(torch, spec["autocast"])) if spec.get("autocast")
           else contextlib.nullcontext())
    if model_name == "ours":
        from longvid.model.encoder import EncoderConfig, VideoEncoder
        model = VideoEncoder(EncoderConfig(**geom, num_frames=F, attention=spec["attention"])).train()
        video = torch.randn(batch, 3, F, S, S, generator=g)
        tuning = spec["tuning"]
        for p in model.parameters():
            p.requires_grad_(tuning == "full")
        model.patch.requires_grad_(False)                      # image-only conv, unused by videos
        if tuning != "full":
            for m in (*model.blocks[-4:], model.norm, model.proj):
                m.requires_grad_(True)
            model.tubelet.requires_grad_(tuning != "last4_frozen_stem")
        if tuning == "last4_ckpt":
            class Ckpt(nn.Module):
                def __init__(self, blk):
                    super().__init__()
                    self.blk = blk

                def forward(self, x, *args):
                    return checkpoint(self.blk, x, *args, use_reentrant=False)
            for i in range(len(model.blocks) - 4):
                model.blocks[i] = Ckpt(model.blocks[i])

        def forward(seed):
            gen = torch.Generator(device=device).manual_seed(seed)
            out = model(video, mask_ratio=spec["mask"], generator=gen)
            return out.embedding.square().mean(), out.tokens.shape[1]
    else:
        import transformers
        transformers.logging.set_verbosity_error()
        common = dict(image_size=S, hidden_size=geom["width"], num_hidden_layers=geom["depth"],
                      num_attention_heads=geom["heads"], intermediate_size=geom["mlp_dim"], num_frames=F)
        t, p = geom["tubelet_frames"], geom["patch_size"]
        if model_name.startswith("vivit"):
            act = {"vivit": {}, "vivit_gelu": {"hidden_act": "gelu"}}[model_name]
            cfg = transformers.VivitConfig(tubelet_size=[t, p, p], **common, **act)
            model = transformers.VivitModel._from_config(cfg, attn_implementation="sdpa")
        else:
            cfg = transformers.VideoMAEConfig(patch_size=p, tubelet_size=t, **common)
            model = transformers.VideoMAEModel._from_config(cfg, attn_implementation="sdpa")
        assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
        model.train()
        video = torch.randn(batch, F, 3, S, S, generator=g)     # HF video models take (B, T, C, H, W)
        L = (F // t) * (S // p) ** 2

        def forward(seed):
            kw = {}
            if spec["mask"] > 0:
                gen = torch.Generator().manual_seed(seed)
                n_mask = round(L * spec["mask"])
                order = torch.rand(batch, L, generator=gen).argsort(1)
                kw["bool_masked_pos"] = torch.zeros(batch, L, dtype=torch.bool).scatter_(
                    1, order[:, :n_mask], True).to(device)
            h = model(pixel_values=video, **kw).last_hidden_state
            return h.mean(1).square().mean(), h.shape[1]

    model, video = model.to(device), video.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:                                       # gradients live in the baseline
        p.grad = torch.zeros_like(p)
    info = dict(params=sum(p.numel() for p in model.parameters()),
                trainable=sum(p.numel() for p in trainable),
                params_grads_MB=(sum(p.numel() for p in model.parameters())
                                 + sum(p.numel() for p in trainable)) * 4 / MB,
                input_MB=video.numel() * 4 / MB)
    exclude = {p.untyped_storage().data_ptr() for p in model.parameters()} | {video.untyped_storage().data_ptr()}

    def step(seed, on_graph=None):
        with amp:
            loss, kept = forward(seed)
        if on_graph is not None:
            on_graph(loss, kept)
        loss.backward()
        return kept
    return model, video, step, info, exclude


def _clock():
    import torch
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter   # see "Time" above


def local_peak(seconds: float = 0.6, n: int = 1024) -> float:
    """Best GFLOP/s of an n^3 fp32 matmul over `seconds`, measured next to the steps it is compared with
    (on this VM the single-core matmul peak moved between 73 and 126 GFLOP/s from one minute to the next)."""
    import torch
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    clock, best, t_end = _clock(), float("inf"), time.perf_counter() + seconds
    torch.matmul(a, b, out=c)
    while time.perf_counter() < t_end:
        t0 = clock()
        torch.matmul(a, b, out=c)
        best = min(best, clock() - t0)
    return 2 * n ** 3 / best / 1e9


def ab_child(specs: list[dict], rounds: int) -> dict:
    """Step times of several models in ONE process, steps interleaved A, B, A, B, ..., so that load drift on
    a shared machine hits all of them alike (used for the time targets; memory comes from fresh children)."""
    import torch
    if specs[0].get("threads"):
        torch.set_num_threads(specs[0]["threads"])
    steps = []
    for s in specs:
        steps.append(build(s)[2])
        steps[-1](0)                                             # warm-up
    clock, times = _clock(), [[] for _ in specs]
    for i in range(rounds):
        for k, step in enumerate(steps):
            t0 = clock()
            step(1 + i)
            times[k].append(clock() - t0)
    return {"names": [name_of(s) for s in specs], "median_s": [statistics.median(t) for t in times],
            "min_s": [min(t) for t in times], "rounds": rounds, "local_peak_gflops": local_peak()}


def child(spec: dict) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    res = dict(spec, threads=torch.get_num_threads())
    model, video, step, info, exclude = build(spec)
    res.update(info)
    graph = {}

    def on_graph(loss, kept):
        graph["kept"] = kept
        if spec.get("tuning") != "last4_ckpt":
            graph["saved"] = _saved_bytes(loss.grad_fn, exclude)

    t0 = time.perf_counter()
    with FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as fc:
        step(0, on_graph)
    res["warmup_s"] = time.perf_counter() - t0
    res["gflop"] = fc.get_total_flops() / 1e9
    res["tokens"] = graph["kept"]
    if "saved" in graph:
        res["saved_MB"] = sum(graph["saved"].values()) / MB
        res["saved_by_op_MB"] = {k: round(v / MB, 1) for k, v in sorted(graph["saved"].items(), key=lambda kv: -kv[1])}
    graph.clear()
    _trim()
    base = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")            # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    step(1)
    t_mem = time.perf_counter() - t0
    res.update(baseline_MB=base, act_peak_MB=_status_mb("VmHWM") - base, mem_step_s=t_mem)
    n = max(1, min(spec["steps"], int(spec["budget"] // max(t_mem, 1e-3))))
    clock = _clock()
    peak_before = local_peak()
    times, walls = [], []
    for i in range(n):
        t0, w0 = clock(), time.perf_counter()
        step(2 + i)
        times.append(clock() - t0)
        walls.append(time.perf_counter() - w0)
    res.update(step_s=statistics.median(times), step_min_s=min(times), step_wall_s=statistics.median(walls),
               clock="process" if clock is time.process_time else "wall", steps_timed=n,
               loadavg=os.getloadavg()[0])
    res["gflops"] = res["gflop"] / res["step_s"]
    res["local_peak_gflops"] = max(peak_before, local_peak())
    res["pct_local_peak"] = 100 * res["gflops"] / res["local_peak_gflops"]
    return res


def peak_child(quick: bool, threads: int) -> dict:
    """Best fp32 matmul GFLOP/s (4096^3), GEMMs at the model's shapes, CPU flash-attention fwd+bwd."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    import torch.nn.functional as F
    from torch.profiler import profile
    from torch.utils.flop_counter import FlopCounterMode
    res = {"threads": torch.get_num_threads()}

    clock = _clock()

    def bench(fn, flops, reps, min_s):
        fn()
        best, t_all, k = float("inf"), time.perf_counter(), 0
        while k < reps or time.perf_counter() - t_all < min_s:
            t0 = clock()
            fn()
            best, k = min(best, clock() - t0), k + 1
        return flops / best / 1e9

    res["matmul_gflops"] = {}
    for n in (1024, 2048, 4096):                 # short calls are less likely to be preempted on a busy box
        a, b = torch.randn(n, n), torch.randn(n, n)
        c = torch.empty(n, n)
        res["matmul_gflops"][n] = bench(lambda: torch.matmul(a, b, out=c), 2 * n ** 3, 3, 2 if quick else 5)
    res["matmul_peak_gflops"] = max(res["matmul_gflops"].values())
    D, Hm, M = GEOM["width"], GEOM["mlp_dim"], BATCH * 64 * 49   # tokens at 128 frames, unmasked
    gemms = {"qkv (M,192)x(192,576)": (M, D, 3 * D), "fc1 (M,192)x(192,768)": (M, D, Hm),
             "fc2 (M,768)x(768,192)": (M, Hm, D)}
    res["gemm_gflops"] = {}
    for name, (m, k, nn_) in gemms.items():
        x, w = torch.randn(m, k), torch.randn(k, nn_)
        res["gemm_gflops"][name.replace("M", str(m))] = bench(lambda: x @ w, 2 * m * k * nn_, 5, 1.0)
    res["sdpa"] = {}
    mapping = _flop_mapping()
    for L, masked in ((3136, False), (784, False), (1568, True)):
        q, k, v = (torch.randn(BATCH, GEOM["heads"], L, D // GEOM["heads"], requires_grad=True) for _ in range(3))
        mask = (torch.rand(BATCH, 1, L, L) > 0.5) if masked else None

        def run():
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
        with FlopCounterMode(display=False, custom_mapping=mapping) as fc:
            run()
        with profile() as prof:
            run()
        kernels = sorted({e.name for e in prof.events() if "attention" in e.name and "_for_cpu" in e.name})
        res["sdpa"][f"L={L}" + (" bool mask" if masked else "")] = dict(
            gflops_fwd_bwd=bench(run, fc.get_total_flops(), 2, 1.0), kernels=kernels)
    return res


# ---------------------------------------------------------------------------------------------- parent side
def name_of(s: dict) -> str:
    if s["model"] == "ours":
        return f"{s['model']}/{s['attention']}/m{s['mask']}/{s['tuning']}/f{s['frames']}"
    return f"{s['model']}/m{s['mask']}/f{s['frames']}"


def run_child(args_list: list[str], timeout: float) -> tuple[dict | None, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        p = subprocess.run([sys.executable, "-m", "longvid.encoder_memory", *args_list], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timeout after {timeout:.0f} s"
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), ""
    return None, (p.stderr.strip().splitlines() or ["no output"])[-1][:300]


def grid(frames, tunings, peers, steps, budget, threads) -> list[dict]:
    specs = []
    for f in frames:
        for att in ATTENTIONS:
            for m in MASKS:
                for t in tunings:
                    specs.append(dict(model="ours", frames=f, mask=m, attention=att, tuning=t))
        if peers:
            specs += [dict(model="vivit", frames=f, mask=0.0, attention="joint", tuning="full"),
                      dict(model="vivit_gelu", frames=f, mask=0.0, attention="joint", tuning="full"),
                      dict(model="videomae", frames=f, mask=PEER_MASK, attention="joint", tuning="full")]
    for s in specs:
        s.update(steps=steps, budget=budget, threads=threads)
    return specs


COLS = [("config", "{}"), ("tokens", "{}"), ("act_peak_MB", "{:.0f}"), ("saved_MB", "{:.0f}"),
        ("params_grads_MB", "{:.1f}"), ("step_s", "{:.3f}"), ("step_min_s", "{:.3f}"), ("step_wall_s", "{:.3f}"),
        ("gflop", "{:.1f}"), ("gflops", "{:.1f}"), ("pct_local_peak", "{:.0f}%"), ("steps_timed", "{}"),
        ("loadavg", "{:.1f}")]


def fmt(r: dict, key: str, spec: str) -> str:
    v = r.get(key)
    return "—" if v is None else spec.format(v)


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()) and "act_peak_MB" in r:
            return r
    return None


AB_GROUPS = ((dict(model="ours", mask=0.0), dict(model="vivit", mask=0.0), dict(model="vivit_gelu", mask=0.0)),
             (dict(model="ours", mask=0.75), dict(model="videomae", mask=PEER_MASK)))


def targets(rows, F, peak, ab: dict) -> list[str]:
    """PASS/FAIL lines at F frames. Memory from the fresh per-config children; time from the interleaved A/B
    children when available (`ab`: config name -> median seconds), else from the per-config rows."""
    out = []

    def check(label, num, den, key, limit):
        if num is None or den is None:
            out.append(f"N/A   {label}: missing measurement")
            return
        ratio, how = num[key] / den[key], ""
        if key == "step_s":
            how = f"; separate runs {ratio:.3f}"
            if num["config"] in ab and den["config"] in ab:
                ratio, how = ab[num["config"]] / ab[den["config"]], "; interleaved A/B" + how
        out.append(f"{'PASS' if ratio <= limit else 'FAIL'}  {label}: {ratio:.3f} (target <= {limit}{how})")

    def info(label, num, den):
        if num and den:
            t = (ab[num["config"]] / ab[den["config"]] if num["config"] in ab and den["config"] in ab
                 else num["step_s"] / den["step_s"])
            out.append(f"INFO  {label}: activation memory {num['act_peak_MB'] / den['act_peak_MB']:.3f}, time {t:.3f}")

    o = lambda **kw: find(rows, model="ours", frames=F, **kw)
    for att in ATTENTIONS:
        check(f"[{F}f] {att}: 75% mask / unmasked activation memory", o(attention=att, mask=0.75, tuning="full"),
              o(attention=att, mask=0.0, tuning="full"), "act_peak_MB", 0.30)
    for t in TUNINGS[1:]:
        check(f"[{F}f] joint: {t} + 75% mask / 75% mask (full) activation memory",
              o(attention="joint", mask=0.75, tuning=t), o(attention="joint", mask=0.75, tuning="full"),
              "act_peak_MB", 0.45)
    ours0, ours75 = o(attention="joint", mask=0.0, tuning="full"), o(attention="joint", mask=0.75, tuning="full")
    vivit, vg = find(rows, model="vivit", frames=F), find(rows, model="vivit_gelu", frames=F)
    vmae = find(rows, model="videomae", frames=F)
    check(f"[{F}f] unmasked joint vs VivitModel: step time", ours0, vivit, "step_s", 0.95)
    check(f"[{F}f] unmasked joint vs VivitModel: activation memory", ours0, vivit, "act_peak_MB", 0.45)
    check(f"[{F}f] 75% joint vs VideoMAEModel 75%: step time", ours75, vmae, "step_s", 1.0)
    check(f"[{F}f] 75% joint vs VideoMAEModel 75%: activation memory", ours75, vmae, "act_peak_MB", 0.9)
    info(f"[{F}f] unmasked joint vs VivitModel(hidden_act='gelu')", ours0, vg)
    for m in (0.0, 0.75):
        r = o(attention="joint", mask=m, tuning="full")
        if r is None or "local_peak_gflops" not in r:
            out.append(f"N/A   [{F}f] joint m{m} achieved FLOP/s vs matmul peak: missing measurement")
            continue
        ratio = r["gflops"] / r["local_peak_gflops"]
        start = f"; {r['gflops'] / peak:.3f} of the run-start peak {peak:.1f}" if peak else ""
        out.append(f"{'PASS' if ratio >= 0.75 else 'FAIL'}  [{F}f] joint m{m} full: achieved {r['gflops']:.1f} GFLOP/s "
                   f"= {ratio:.3f} of the matmul peak measured in the same child ({r['local_peak_gflops']:.1f})"
                   f"{start} (target >= 0.75)")
    return out


def memory_curve(rows, path: Path) -> bool:
    """The report's figure: activation peak vs frames, full tuning, one curve per model x attention x mask (what
    the pipeline passes to the report as `report_options.figures`). False if no row has a measurement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if r.get("error") or not isinstance(r.get("act_peak_MB"), (int, float)) or "frames" not in r:
            continue
        if r.get("tuning", "full") != "full":
            continue
        model = r.get("model", "?")
        label = f"{model} {r['attention']} mask {r.get('mask', 0)}" if r.get("attention") and \
            model.startswith("ours") else f"{model} mask {r.get('mask', 0)}"
        curves.setdefault(label, []).append((int(r["frames"]), float(r["act_peak_MB"])))
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110, layout="constrained")
    for i, (label, pts) in enumerate(sorted(curves.items())):
        pts.sort()
        style = "-o" if label.startswith("ours") else ":^"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, color=f"C{i % 10}")
    frames = sorted({p[0] for pts in curves.values() for p in pts})
    ax.set(xscale="log", yscale="log", xlabel="frames", ylabel="activation peak (MB, RSS)")
    ax.set_xticks(frames, [str(f) for f in frames])
    ax.minorticks_off()
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Video encoder activation memory vs frames (full tuning)", fontsize=11)
    fig.savefig(path)
    plt.close(fig)
    return True


def plot(rows, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ok = [r for r in rows if "act_peak_MB" in r]

    def line(ax, sel, label, key, style="-o", **kw):
        pts = sorted((r["frames"], r[key]) for r in ok if sel(r))
        if pts:
            ax.plot(*zip(*pts), style, label=label, **kw)
    for att in ATTENTIONS:
        for m in MASKS:
            sel = lambda r, att=att, m=m: r["model"] == "ours" and r["attention"] == att and r["mask"] == m \
                and r["tuning"] == "full"
            style = "-o" if att == "joint" else "--s"
            line(axes[0], sel, f"ours {att} mask {m}", "act_peak_MB", style)
            line(axes[2], sel, f"ours {att} mask {m}", "step_s", style)
    for peer, m in (("vivit", 0.0), ("vivit_gelu", 0.0), ("videomae", PEER_MASK)):
        for ax, key in ((axes[0], "act_peak_MB"), (axes[2], "step_s")):
            line(ax, lambda r, peer=peer, m=m: r["model"] == peer and r["mask"] == m,
                 f"HF {peer} mask {m}", key, ":^")
    for i, t in enumerate(TUNINGS):
        for m in (0.0, 0.75):
            line(axes[1], lambda r, t=t, m=m: r["model"] == "ours" and r["attention"] == "joint" and r["mask"] == m
                 and r["tuning"] == t, f"joint mask {m} {t}", "act_peak_MB", "-o" if m else "--s", color=f"C{i}")
    titles = ("activation peak (RSS) by attention x mask, full tuning", "activation peak by tuning, joint",
              "train-step time (s)")
    for ax, title in zip(axes, titles):
        ax.set(xscale="log", yscale="log", xlabel="frames", title=title)
        ax.set_xticks([16, 32, 64, 128], ["16", "32", "64", "128"])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylabel("s" if "time" in title else "MB")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"VideoEncoder ViT-Tiny 112px 16x16x2, batch {BATCH}, fp32, CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="frames 16,32 only, 2 timed steps")
    ap.add_argument("--frames", type=int, nargs="+", help="frame counts (default 16 32 64 128)")
    ap.add_argument("--steps", type=int, help="timed steps per config (default 3, quick 2)")
    ap.add_argument("--budget", type=float, default=45.0, help="max seconds of timed steps per config")
    ap.add_argument("--tunings", nargs="+", default=list(TUNINGS), choices=TUNINGS)
    ap.add_argument("--no-peers", action="store_true", help="skip the HF VivitModel / VideoMAEModel rows")
    ap.add_argument("--skip", nargs="*", default=[], help="glob(s) on config names to skip, e.g. "
                    "'ours/factorized/m0.0/*/f128' (names: ours/<attn>/m<mask>/<tuning>/f<F>, vivit/m0.0/f<F>)")
    ap.add_argument("--threads", type=int, default=-1, help="torch threads per child: 0 = torch default, "
                    "-1 (default) = 1 if the 1-min load average is >= 1 (other jobs share the cores: a 2-thread op "
                    "then waits for a descheduled OpenMP worker at every barrier, which inflated steps 3x here) "
                    "else torch default")
    ap.add_argument("--timeout", type=float, default=900.0, help="kill a config's child after this many s")
    ap.add_argument("--no-peak", action="store_true", help="skip the matmul / SDPA peak measurement (no FLOP/s "
                    "ratios; the pipeline's memory curve needs none)")
    ap.add_argument("--out", type=Path, default=Path("outputs") / "benchmarks")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ab-child", help=argparse.SUPPRESS)
    ap.add_argument("--ab-rounds", type=int, default=5, help="interleaved steps per model for the time targets "
                    "(0 = use the per-config times)")
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.ab_child:
        print("RESULT " + json.dumps(ab_child(json.loads(args.ab_child), args.ab_rounds)), flush=True)
        return
    if args.peak_child:
        print("RESULT " + json.dumps(peak_child(args.quick, args.threads)), flush=True)
        return

    frames = args.frames or ([16, 32] if args.quick else [16, 32, 64, 128])
    steps = args.steps or (2 if args.quick else 3)
    load = os.getloadavg()[0]
    threads = args.threads if args.threads >= 0 else (1 if load >= 1.0 else 0)
    specs = grid(frames, args.tunings, not args.no_peers, steps, args.budget, threads)
    t_start = time.perf_counter()
    print(f"encoder memory benchmark: {len(specs)} configs, frames {frames}, {steps} timed steps, "
          f"threads {threads or 'torch default'}, load average {load:.1f} on {os.cpu_count()} cores", flush=True)
    peak_res, err = (None, "skipped (--no-peak)") if args.no_peak else \
        run_child(["--peak-child", "--threads", str(threads)] + (["--quick"] if args.quick else []), args.timeout)
    peak = peak_res["matmul_peak_gflops"] if peak_res else None
    if peak_res:
        print(f"fp32 matmul peak ({peak_res['threads']} threads): {peak:.1f} GFLOP/s (n^3 for n = "
              + ", ".join(f"{n}: {v:.1f}" for n, v in peak_res["matmul_gflops"].items()) + ")")
        for k, v in peak_res["gemm_gflops"].items():
            print(f"  GEMM {k}: {v:.1f} GFLOP/s ({v / peak:.0%} of peak)")
        for k, v in peak_res["sdpa"].items():
            print(f"  SDPA fwd+bwd {k}: {v['gflops_fwd_bwd']:.1f} GFLOP/s ({v['gflops_fwd_bwd'] / peak:.0%}), "
                  f"kernels {v['kernels']}")
    else:
        print(f"no matmul peak: {err}")
    rows = []
    for i, s in enumerate(specs):
        name = name_of(s)
        if any(fnmatch.fnmatch(name, pat) for pat in args.skip):
            rows.append(dict(s, config=name, error="skipped (--skip)"))
            print(f"[{i + 1}/{len(specs)}] {name}: skipped", flush=True)
            continue
        t0 = time.perf_counter()
        r, err = run_child(["--child", json.dumps(s)], args.timeout)
        r = dict(s, error=err) if r is None else r
        r["config"] = name
        if peak and "gflops" in r:
            r["pct_peak"] = 100 * r["gflops"] / peak
        rows.append(r)
        msg = err or (f"tokens {r['tokens']}, act peak {r['act_peak_MB']:.0f} MB, saved "
                      f"{fmt(r, 'saved_MB', '{:.0f}')} MB, step {r['step_s']:.3f} s, {r['gflops']:.1f} GFLOP/s")
        print(f"[{i + 1}/{len(specs)}] {name}: {msg}  ({time.perf_counter() - t0:.0f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    header = "| " + " | ".join(c for c, _ in COLS) + " |"
    md = [f"# Encoder activation memory and train-step time", "",
          f"ViT-Tiny (192/12/3/768), 112px, 16x16x2 tubelets, batch {BATCH}, fp32, CPU "
          f"({peak_res['threads'] if peak_res else '?'} threads). act_peak_MB = peak RSS growth of one train step "
          f"over a baseline holding model, gradients and input; saved_MB = storages held by the autograd graph "
          f"after forward. matmul peak: {peak and round(peak, 1)} GFLOP/s.", "", header,
          "|" + "---|" * len(COLS)]
    for r in rows:
        md.append("| " + " | ".join(r["error"] if c == "tokens" and r.get("error") else fmt(r, c, f)
                                    for c, f in COLS) + " |")
    F = max(frames)
    ab = {}
    if args.ab_rounds > 0:
        for group in AB_GROUPS:
            specs_ab = [s for s in specs for g in group if s["frames"] == F and s["model"] == g["model"]
                        and s["mask"] == g["mask"] and s["attention"] == "joint" and s["tuning"] == "full"
                        and find(rows, config=name_of(s))]
            if len(specs_ab) < 2:
                continue
            t0 = time.perf_counter()
            r, err = run_child(["--ab-child", json.dumps(specs_ab), "--ab-rounds", str(args.ab_rounds)],
                               args.timeout * len(specs_ab))
            if r is None:
                print(f"A/B timing failed: {err}")
                continue
            ab.update(zip(r["names"], r["median_s"]))
            print(f"A/B timing at {F} frames, {r['rounds']} interleaved rounds ({time.perf_counter() - t0:.0f} s): "
                  + ", ".join(f"{n} {t:.3f} s" for n, t in zip(r["names"], r["median_s"])), flush=True)
    lines = targets(rows, F, peak, ab)
    total = time.perf_counter() - t_start
    md += ["", "## Targets", "", *[f"- {x}" for x in lines], "", f"Total runtime: {total:.0f} s"]
    if peak_res:
        md += ["", "## Kernel context", "", "```", json.dumps(peak_res, indent=1), "```"]
    (args.out / "encoder_memory.md").write_text("\n".join(md) + "\n")
    keys = ["config", "model", "attention", "mask", "tuning", "frames", "tokens", "act_peak_MB", "saved_MB",
            "params_grads_MB", "baseline_MB", "input_MB", "step_s", "step_min_s", "step_wall_s", "clock", "mem_step_s", "warmup_s", "steps_timed",
            "gflop", "gflops", "local_peak_gflops", "pct_local_peak", "pct_peak", "params", "trainable", "threads", "loadavg", "error", "saved_by_op_MB"]
    with open(args.out / "encoder_memory.csv", "w") as fh:
        fh.write(",".join(keys) + "\n")
        for r in rows:
            vals = [r.get(k, "") for k in keys]
            fh.write(",".join('"' + json.dumps(v).replace('"', "'") + '"' if isinstance(v, dict)
                              else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in vals) + "\n")
    (args.out / "encoder_memory.json").write_text(json.dumps({"peak": peak_res, "ab_median_s": ab, "rows": rows,
                                                              "targets": lines}, indent=1))
    try:
        plot(rows, args.out / "encoder_memory.png")
        memory_curve(rows, args.out / "encoder_memory_curve.png")
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
    print()
    print("\n".join(md[4:4 + len(rows) + 2]))
    print()
    print("\n".join(lines))
    print(f"\nwrote {args.out}/encoder_memory.{{md,csv,json,png}} and encoder_memory_curve.png; total runtime "
          f"{total:.0f} s")


if __name__ == "__main__":
    main()
