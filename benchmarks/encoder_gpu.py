"""Our video encoder against the transformers peers on a GPU, side by side in one process (issue 13's targets).

    python benchmarks/encoder_gpu.py --quick            # the target configs at 128 frames (~1-2 min on an H200)
    python benchmarks/encoder_gpu.py                    # ViT-B, bf16, batch 16; frames 16..256 x masks x ...
    python benchmarks/encoder_gpu.py --levers           # + torch.compile'd blocks and each SDPA backend, unmasked
    python benchmarks/encoder_gpu.py --device cpu --geometry tiny --frames 4 --batch 2 --steps 1   # CPU smoke run

One train step = forward + backward of the mean-pooled output (`longvid.encoder_memory.build`: the same models
and steps as the CPU memory study; peers are `VivitModel` unmasked and `VideoMAEModel` with the same random drop
through `bool_masked_pos`, both `attn_implementation="sdpa"`, randomly initialised from configs).
- memory: `torch.cuda.max_memory_allocated` during one step minus the allocation before it (model, gradients and
  input are in that baseline), in GiB;
- time: median of `--steps` CUDA-synchronised steps after a warm-up;
- FLOPs: `FlopCounterMode` over the warm-up step; the peak: the best bf16 n^3 matmul (n = 8192) in this process.
Every config runs in this one process, one after another, with the allocator emptied in between; an
out-of-memory config is recorded as such. Writes <out>/encoder_gpu.{json,md} and prints PASS / FAIL per target.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from longvid.encoder_memory import _flop_mapping, build  # noqa: E402

GEOMETRIES = {  # ViT-B at 224 px with 16 px patches and 2-frame tubelets (the paper's); a tiny one for CPU runs
    "vit_b": dict(image_size=224, patch_size=16, tubelet_frames=2, width=768, depth=12, heads=12, mlp_dim=3072,
                  embed_dim=512),
    "tiny": dict(image_size=32, patch_size=16, tubelet_frames=2, width=64, depth=2, heads=2, mlp_dim=128,
                 embed_dim=32),
}
GiB = 2 ** 30
TARGET_FRAMES = 128


def specs(frames: list[int], quick: bool, levers: bool) -> list[dict]:
    out = []
    for F in frames:
        if quick:
            ours = [("joint", 0.0, "full"), ("joint", 0.75, "full"), ("joint", 0.75, "last4"),
                    ("factorized", 0.75, "full")]
        else:
            ours = [(a, m, t) for a in ("joint", "factorized") for m in (0.0, 0.5, 0.75) for t in ("full", "last4")]
        out += [dict(model="ours", frames=F, attention=a, mask=m, tuning=t) for a, m, t in ours]
        out += [dict(model="vivit", frames=F, mask=0.0)]
        out += [dict(model="videomae", frames=F, mask=m) for m in ((0.75,) if quick else (0.0, 0.5, 0.75))]
        if levers:
            out += [dict(model="ours", frames=F, attention="joint", mask=0.0, tuning="full", compile=True)]
            out += [dict(model="ours", frames=F, attention="joint", mask=0.0, tuning="full", sdpa=b)
                    for b in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION")]
    return out


def name_of(s: dict) -> str:
    if s["model"] != "ours":
        return f"{s['model']}/m{s['mask']}/f{s['frames']}"
    extra = "+compile" if s.get("compile") else (f"+{s['sdpa'].split('_')[0].lower()}" if s.get("sdpa") else "")
    return f"ours/{s['attention']}/m{s['mask']}/{s['tuning']}{extra}/f{s['frames']}"


def matmul_peak(device: str) -> float:
    """Best TFLOP/s of an n^3 matmul (bf16 n=8192 on CUDA, fp32 n=1024 on CPU)."""
    import torch

    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(20):
        t0 = _sync_time(device)
        a @ b
        best = min(best, _sync_time(device) - t0)
    return 2 * n ** 3 / best / 1e12


def _sync_time(device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def measure(spec: dict, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    device, res = spec["device"], {"name": name_of(spec), **{k: v for k, v in spec.items() if k != "geom"}}
    torch.manual_seed(0)
    model, video, step, info, _ = build(spec)
    res.update(params=info["params"], trainable=info["trainable"])
    if spec.get("compile"):
        for i, blk in enumerate(model.blocks):
            model.blocks[i] = torch.compile(blk)
    ctx = contextlib.nullcontext()
    if spec.get("sdpa"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        ctx = sdpa_kernel(getattr(SDPBackend, spec["sdpa"]))
    with ctx:
        if spec.get("compile"):
            step(0)                                             # compile outside the FLOP counter
        with FlopCounterMode(display=False, custom_mapping=_flop_mapping() if device == "cpu" else {}) as fc:
            res["tokens"] = step(0)
        res["tflop"] = fc.get_total_flops() / 1e12
        if device == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step(1)
            torch.cuda.synchronize()
            res["act_GiB"] = (torch.cuda.max_memory_allocated() - base) / GiB
        times = []
        for i in range(steps):
            t0 = _sync_time(device)
            step(2 + i)
            times.append(_sync_time(device) - t0)
    res["step_s"] = statistics.median(times)
    res["tflops"] = res["tflop"] / res["step_s"]
    del model, video, step
    return res


def run_one(spec: dict, steps: int) -> dict:
    import torch

    try:
        return measure(spec, steps)
    except torch.OutOfMemoryError:
        return {"name": name_of(spec), **{k: v for k, v in spec.items() if k != "geom"}, "oom": True}
    finally:
        gc.collect()
        if spec["device"] == "cuda":
            torch.cuda.empty_cache()


def find(rows, **kw):
    return next((r for r in rows if all(r.get(k) == v for k, v in kw.items()) and not r.get("oom")
                 and not r.get("compile") and not r.get("sdpa")), None)


def targets(rows: list[dict], F: int, peak: float) -> list[str]:
    """Issue 13's targets at F frames: PASS / FAIL lines with the measured ratios."""
    lines = []

    def check(label, a, b, key, limit):
        if a is None or b is None or key not in a or key not in b:
            lines.append(f"SKIP  [{F}f] {label}: not measured")
            return
        ratio = a[key] / b[key]
        lines.append(f"{'PASS' if ratio <= limit else 'FAIL'}  [{F}f] {label}: {ratio:.3f} (target <= {limit})")

    joint0 = find(rows, model="ours", attention="joint", mask=0.0, tuning="full", frames=F)
    joint75 = find(rows, model="ours", attention="joint", mask=0.75, tuning="full", frames=F)
    fact75 = find(rows, model="ours", attention="factorized", mask=0.75, tuning="full", frames=F)
    vivit, mae75 = find(rows, model="vivit", frames=F), find(rows, model="videomae", mask=0.75, frames=F)
    check("unmasked step time vs VivitModel", joint0, vivit, "step_s", 0.80)
    check("unmasked activation memory vs VivitModel", joint0, vivit, "act_GiB", 0.60)
    check("75%-masked step time vs VideoMAEModel", joint75, mae75, "step_s", 0.80)
    check("75%-masked activation memory vs VideoMAEModel", joint75, mae75, "act_GiB", 0.70)
    check("factorized masked vs joint masked step time", fact75, joint75, "step_s", 1.0)
    if joint0 is not None:
        frac = joint0["tflops"] / peak
        lines.append(f"{'PASS' if frac >= 0.65 else 'FAIL'}  [{F}f] unmasked step at {joint0['tflops']:.3g} TFLOP/s "
                     f"= {frac:.2f} of the matmul peak measured here ({peak:.3g}) (target >= 0.65)")
    return lines


def table(rows: list[dict]) -> str:
    out = ["| config | tokens | step s | activation GiB | TFLOP | TFLOP/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("oom"):
            out.append(f"| {r['name']} | | out of memory | | | |")
            continue
        mem = f"{r['act_GiB']:.2f}" if "act_GiB" in r else "n/a (CPU)"
        out.append(f"| {r['name']} | {r['tokens']} | {r['step_s']:.4f} | {mem} | {r['tflop']:.3f} "
                   f"| {r['tflops']:.1f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--geometry", default="vit_b", choices=sorted(GEOMETRIES))
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per config (median)")
    ap.add_argument("--quick", action="store_true", help=f"the target configs only, at {TARGET_FRAMES} frames")
    ap.add_argument("--levers", action="store_true", help="also torch.compile'd blocks and each SDPA backend")
    ap.add_argument("--out", type=Path, default=Path("outputs") / "benchmarks")
    a = ap.parse_args(argv)
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu for a smoke run", file=sys.stderr)
        return 2
    frames = [TARGET_FRAMES] if a.quick and a.frames == ap.get_default("frames") else a.frames
    peak = matmul_peak(a.device)
    print(f"{a.device}: matmul peak {peak:.1f} TFLOP/s", flush=True)
    rows = []
    for s in specs(frames, a.quick, a.levers):
        s.update(device=a.device, geom=GEOMETRIES[a.geometry], batch=a.batch,
                 autocast="bfloat16" if a.device == "cuda" else None)
        rows.append(run_one(s, a.steps))
        r = rows[-1]
        print(f"{r['name']:45s} " + ("out of memory" if r.get("oom") else
                                     f"{r['step_s']:.4f} s  {r.get('act_GiB', float('nan')):.2f} GiB  "
                                     f"{r['tflops']:.3g} TFLOP/s"), flush=True)
    lines = [x for F in frames for x in targets(rows, F, peak)]
    a.out.mkdir(parents=True, exist_ok=True)
    header = (f"{a.geometry}, batch {a.batch}, {'bf16 autocast' if a.device == 'cuda' else 'fp32'}, {a.device}; "
              f"matmul peak {peak:.1f} TFLOP/s")
    (a.out / "encoder_gpu.json").write_text(json.dumps({"settings": header, "peak_tflops": peak, "rows": rows,
                                                        "targets": lines}, indent=1))
    (a.out / "encoder_gpu.md").write_text(f"{header}\n\n{table(rows)}\n\n" + "\n".join(f"- {x}" for x in lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {a.out / 'encoder_gpu.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
