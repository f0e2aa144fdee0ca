"""Comparison tables: rows = systems, columns = metrics per benchmark, delta vs a reference row with a
paired-bootstrap 95% CI (videos resampled when items share a video) and a McNemar p for accuracy; Markdown,
CSV and LaTeX, with a footer of item and cluster counts, failures and unparseable rates."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np

from evals.contracts import MetricResult
from evals.metrics import metric
from evals.stats import Draws, PairedDelta, paired_delta, paired_p


@dataclass
class Cell:
    value: float
    delta: PairedDelta | None = None
    p: float | None = None          # McNemar exact p (accuracy)


@dataclass
class Table:
    columns: list[tuple[str, str]]                 # (benchmark, metric)
    rows: list[str]                                # systems
    reference: str
    cells: dict[tuple[str, tuple[str, str]], Cell] = field(default_factory=dict)
    footer: list[str] = field(default_factory=list)
    scale: float = 100.0
    confidence: float = 0.95

    def _fmt(self, cell: Cell | None, with_delta: bool) -> str:
        if cell is None:
            return "—"
        if math.isnan(cell.value):
            return "n/a"
        s = f"{cell.value * self.scale:.1f}"
        if with_delta and cell.delta is not None:
            d = cell.delta
            s += f" ({d.delta * self.scale:+.1f} [{d.low * self.scale:+.1f}, {d.high * self.scale:+.1f}]"
            s += f", p={cell.p:.3g})" if cell.p is not None else ")"
        return s

    def markdown(self) -> str:
        head = ["system"] + [f"{b} {m}" for b, m in self.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            name = f"{r} (ref)" if r == self.reference else r
            lines.append("| " + " | ".join([name] + [self._fmt(self.cells.get((r, c)), True)
                                                     for c in self.columns]) + " |")
        return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in self.notes()) + "\n"

    def notes(self) -> list[str]:
        """How to read the cells, then the footer (items, clusters, failures)."""
        return [f"Values x{self.scale:g}. Non-reference cells: value (delta vs {self.reference} "
                f"[{100 * self.confidence:g}% paired-bootstrap CI], McNemar p for accuracy: exact for independent "
                "items)."] + self.footer

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["system", "benchmark", "metric", "value", "delta", "ci_low", "ci_high", "mcnemar_p",
                    "n", "clusters", "reference"])
        for r in self.rows:
            for b, m in self.columns:
                c = self.cells.get((r, (b, m)))
                if c is None:
                    continue
                d, k = c.delta, self.scale
                w.writerow([r, b, m, c.value * k] +
                           (["", "", ""] if d is None else [d.delta * k, d.low * k, d.high * k]) +
                           ["" if c.p is None else c.p, "" if d is None else d.n,
                            "" if d is None or d.clusters is None else d.clusters, self.reference])
        return buf.getvalue()

    def latex(self) -> str:
        esc = lambda s: (s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%")
                         .replace("&", "\\&").replace("#", "\\#"))
        cols = "l" + "r" * len(self.columns)
        out = [f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
               " & ".join(["System"] + [esc(f"{b} {m}") for b, m in self.columns]) + " \\\\", "\\midrule"]
        for r in self.rows:
            cells = []
            for c in self.columns:
                cell = self.cells.get((r, c))
                s = self._fmt(cell, False)
                if cell is not None and cell.delta is not None:
                    d = cell.delta
                    s += f" \\scriptsize{{({d.delta * self.scale:+.1f})}}"
                cells.append(s.replace("—", "--"))
            out.append(" & ".join([esc(r)] + cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(out) + "\n"


def _boot(result: MetricResult, keys: list[str], draws: Draws) -> tuple[float, np.ndarray]:
    resample = result.info.get("resample")
    if resample is not None:
        return result.value, draws.distribution(resample)
    x = np.array([result.per_item[k] for k in keys])
    return float(x.mean()), draws.distribution(x)


def build_table(scores: dict[str, dict[str, dict[str, MetricResult]]], columns: dict[str, list[str]],
                reference: str, resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
                clusters: dict[str, dict[str, str]] | None = None) -> Table:
    """`scores[benchmark][system][metric]`; `columns[benchmark]` = metrics to show (in order);
    `clusters[benchmark][uid]` = the item's cluster (its video): CIs resample clusters, and accuracy p-values
    use the exact sign-flip test over clusters (McNemar at the video level), where items share one.

    Deltas are computed on the items both systems were scored on, which for corpus statistics (those with
    a `resample` function) must be all items: the suite scores failed items as empty/wrong, so they are."""
    systems: list[str] = []
    for per_sys in scores.values():
        systems += [s for s in per_sys if s not in systems]
    if reference not in systems:
        raise ValueError(f"reference system {reference!r} not among {systems}")
    table = Table(columns=[(b, m) for b in columns for m in columns[b]], rows=systems, reference=reference,
                  confidence=confidence)
    for b, metrics in columns.items():
        per_sys = scores.get(b, {})
        if per_sys and reference not in per_sys:  # the reference does not do this task: use the first
            table.footer.append(f"{b}: deltas vs {next(iter(per_sys))} ({reference} does not run it)")
        ref_name = reference if reference in per_sys else next(iter(per_sys), reference)
        of = (clusters or {}).get(b)
        first = per_sys.get(ref_name, {}).get(metrics[0]) if metrics and of else None
        if first is not None and len(videos := {of.get(k, k) for k in first.per_item}) < len(first.per_item):
            table.footer.append(f"{b}: {len(first.per_item)} scored items share {len(videos)} videos: CIs resample "
                                "videos (cluster bootstrap)" + ("; accuracy p = exact sign-flip test over videos "
                                "(McNemar at the video level)" if any(metric(m).paired_test == "mcnemar"
                                                                       for m in metrics) else ""))
        for m in metrics:
            ref = per_sys.get(ref_name, {}).get(m)
            draws: dict[tuple, tuple[Draws, tuple]] = {}   # shared items -> (draws, reference distribution)
            for s, res in per_sys.items():
                r = res.get(m)
                if r is None:
                    continue
                cell = Cell(r.value)
                table.cells[(s, (b, m))] = cell
                if s == ref_name or ref is None or math.isnan(r.value) or math.isnan(ref.value):
                    continue
                keys = [k for k in ref.per_item if k in r.per_item]
                if not keys:
                    continue
                if len(keys) != len(ref.per_item) and "resample" in r.info:
                    raise ValueError(f"{b} {m}: {s} and {ref_name} were scored on different items")
                labels = None if of is None else [of.get(k, k) for k in keys]
                if tuple(keys) not in draws:
                    dr = Draws(len(keys), resamples, seed, labels)
                    draws[tuple(keys)] = (dr, _boot(ref, keys, dr))
                dr, (full_r, br) = draws[tuple(keys)]
                full_s, boot_s = _boot(r, keys, dr)
                cell.delta = paired_delta(full_r, full_s, br, boot_s, len(keys), confidence,
                                          dr.n_clusters if dr.clustered else None)
                if metric(m).paired_test == "mcnemar":
                    cell.p = paired_p([ref.per_item[k] > 0.5 for k in keys], [r.per_item[k] > 0.5 for k in keys],
                                      labels)
    return table
