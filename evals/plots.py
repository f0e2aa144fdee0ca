"""PNG plots of the static report (`evals.report`): metric bars with per-system CI whiskers, accuracy by
question kind, a metric against the frame budget (`longvid-compare sweep.frames=[...]`). matplotlib's object API on the Agg canvas only
(no pyplot: no global state, no display needed); matplotlib is imported when a plot is drawn."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

# (value, low, high) of one system on one metric; low/high None when no CI could be computed
Estimate = tuple[float, float | None, float | None]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _bars(ax, groups: Sequence[str], systems: Sequence[str], values: Mapping[str, Mapping[str, Estimate]],
          colors: Mapping[str, str], scale: float) -> None:
    """Grouped bars: one group per entry of `groups`, one bar per system, whiskers = CI."""
    width = 0.8 / max(1, len(systems))
    for j, s in enumerate(systems):
        xs, ys, lo, hi = [], [], [], []
        for i, g in enumerate(groups):
            est = values.get(s, {}).get(g)
            if est is None or not math.isfinite(est[0]):
                continue
            v, low, high = est
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(v * scale)
            # percentile CIs of corpus statistics need not contain the point value: clip the whiskers at it
            lo.append(0.0 if low is None else max(0.0, (v - low) * scale))
            hi.append(0.0 if high is None else max(0.0, (high - v) * scale))
        if xs:
            ax.bar(xs, ys, width * 0.95, color=colors[s], label=s, yerr=[lo, hi], capsize=3,
                   error_kw={"elinewidth": 1, "ecolor": "black"})
    ax.set_xticks(range(len(groups)), list(groups))
    ax.grid(True, axis="y", alpha=0.3)


def metric_bars(path: Path, benchmark: str, metrics: Sequence[str], systems: Sequence[str],
                values: Mapping[str, Mapping[str, Estimate]], colors: Mapping[str, str],
                confidence: float, scale: float = 100.0) -> None:
    """One panel per metric of one benchmark, a bar per system with its bootstrap CI."""
    fig = _figure(max(4.0, 1.2 + 2.6 * len(metrics)), 3.4)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        _bars(ax, [m], systems, values, colors, scale)
        ax.set_xticks([])
        ax.set_title(m, fontsize=10)
    axes[0].set_ylabel(f"value x{scale:g}")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:   # systems missing from the first panel still get a legend entry
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, max(1, len(labels))), fontsize=8)
    fig.suptitle(f"{benchmark}: per-system values, {100 * confidence:g}% bootstrap CI", fontsize=11)
    fig.savefig(path)


def kind_bars(path: Path, benchmark: str, kinds: Sequence[str], systems: Sequence[str],
              values: Mapping[str, Mapping[str, Estimate]], colors: Mapping[str, str], confidence: float,
              chance: float | None = None) -> None:
    """Accuracy by question kind (x: "all" then each kind), a bar per system with its CI."""
    fig = _figure(max(4.5, 1.5 + 1.6 * len(kinds) * max(1, len(systems)) / 2), 3.6)
    ax = fig.subplots()
    _bars(ax, kinds, systems, values, colors, 100.0)
    if chance is not None and math.isfinite(chance):
        ax.axhline(100 * chance, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(f"{benchmark}: accuracy by question kind, {100 * confidence:g}% bootstrap CI", fontsize=11)
    fig.savefig(path)


def budget_curves(path: Path, curves: Mapping[str, tuple[str, Mapping[str, Mapping[int, Estimate]]]],
                  colors: Mapping[str, str], confidence: float, scale: float = 100.0) -> None:
    """One panel per benchmark: its headline metric against the frame budget, a line per system with its
    bootstrap CI as a band. `curves[benchmark] = (metric, {system: {frames: estimate}})`."""
    fig = _figure(max(4.5, 4.2 * len(curves)), 3.6)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    frames = sorted({n for _, per in curves.values() for pts in per.values() for n in pts})
    for ax, (b, (metric, per)) in zip(axes, curves.items()):
        for s, pts in per.items():
            ns = sorted(n for n in pts if math.isfinite(pts[n][0]))
            if not ns:
                continue
            ax.plot(ns, [pts[n][0] * scale for n in ns], "-o", color=colors[s], label=s)
            band = [n for n in ns if pts[n][1] is not None]
            if band:
                ax.fill_between(band, [pts[n][1] * scale for n in band], [pts[n][2] * scale for n in band],
                                color=colors[s], alpha=0.15, linewidth=0)
        ax.set(xscale="log", xlabel="frames per video", title=f"{b}: {metric}")
        ax.set_xticks(frames, [str(n) for n in frames])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"value x{scale:g}")
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[l] for l in labels], labels, loc="outside lower center", ncols=min(4, max(1, len(labels))),
               fontsize=8)
    fig.suptitle(f"metric vs frame budget, {100 * confidence:g}% bootstrap CI bands", fontsize=11)
    fig.savefig(path)

