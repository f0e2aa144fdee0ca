"""A static HTML report of one comparison run: `<out_dir>/report/index.html` plus `plots/*.png` and
`thumbs/*.jpg` beside it. It opens from disk (file://): no server, no network, all data inlined in the page
as one JSON literal (browsers refuse fetch() of local files), every image referenced by a relative path.

Sections: the comparison table (as table.md: values, deltas vs the reference with paired CI, McNemar p),
per-system values with bootstrap CIs (same draws as the table: `evals.stats.bootstrap_distribution`), plots,
and a per-item browser (frames, question/options or references, each system's output and per-item score)
with filters by benchmark, question kind and "systems disagree".

Frames are read by a callable from config (`report_options.frame_reader`, by default
`longvid.data.video.read_frames` with `_partial_: true`), so `evals` imports no video code itself; they are
for display only."""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from evals.contracts import MCQA, MetricResult, Prediction, Sample
from evals.scoring import with_choice
from evals.metrics import metric
from evals.stats import bootstrap_distribution

DEFAULTS = dict(thumbnails=4, thumbnail_size=96, max_thumbnail_videos=500, max_text_chars=4000,
                frame_reader=None, figures=())
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def write_report_safely(cfg, summary: Mapping) -> Path | None:
    """`write_report`, but a failure only warns (the table files are already written): the traceback goes
    to `<out_dir>/report_error.txt`."""
    out = Path(summary["out"])
    try:
        path = write_report(cfg, summary)
        (out / "report_error.txt").unlink(missing_ok=True)
        return path
    except Exception:  # noqa: BLE001 - the report is an extra; never lose the run's table over it
        try:
            (out / "report_error.txt").write_text(traceback.format_exc())
            where = f"see {out / 'report_error.txt'}"
        except OSError as e:                       # e.g. a read-only output folder being scored again
            where = f"and its error could not be saved either ({e.strerror})"
        print(f"warning: the HTML report failed (table files are written); {where}", file=sys.stderr)
        return None


def _options(cfg) -> dict:
    from omegaconf import OmegaConf

    opts = dict(DEFAULTS)
    node = cfg.get("report_options")
    if node is not None:
        unknown = set(node) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown report_options {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
        plain = OmegaConf.to_container(node, resolve=True)
        opts.update(plain, frame_reader=node.get("frame_reader"))   # that one is instantiated later
    return opts


def write_report(cfg, summary: Mapping) -> Path:
    """Write `<out_dir>/report/` for a `run_compare` summary (`table`, `scores`, `out`) and its config.
    Built in a temporary folder that replaces the old report only when complete. Returns index.html."""
    from hydra.utils import instantiate

    out = Path(summary["out"])
    opts = _options(cfg)
    tmp = out / ".report.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "plots").mkdir(parents=True)
    (tmp / "thumbs").mkdir()
    notes: list[str] = []
    table, scores = summary["table"], summary["scores"]
    systems = list(table.rows)
    colors = {s: f"C{i % 10}" for i, s in enumerate(systems)}
    stats = (int(cfg.stats.resamples), int(cfg.stats.seed), float(cfg.stats.confidence))

    samples, predictions = summary["samples"], summary["predictions"]   # what the run holds: nothing read again
    clusters = summary.get("clusters") or {}
    cis = {b: {s: {m: estimate(r, *stats, clusters=clusters.get(b)) for m, r in res.items()} for s, res in per.items()}
           for b, per in scores.items()}
    plots = _plots(tmp, table, scores, cis, colors, stats[2], opts, notes)

    reader = None
    if int(opts["thumbnails"]) > 0 and opts["frame_reader"] is not None:
        try:
            reader = instantiate(opts["frame_reader"])
        except Exception as e:  # noqa: BLE001 - no thumbnails, said in the notes
            notes.append(f"no frame thumbnails: the frame reader could not be built ({type(e).__name__}: {e})")
    elif int(opts["thumbnails"]) > 0:
        notes.append("no frame thumbnails: report_options.frame_reader is not set")
    thumbs = _Thumbnails(tmp / "thumbs", reader, int(opts["thumbnails"]), int(opts["thumbnail_size"]),
                         int(opts["max_thumbnail_videos"]))
    items, benches = [], []
    for b, per in scores.items():
        task = samples[b][0].task if samples[b] else None
        cols = [m for bb, m in table.columns if bb == b]
        shown = [m for m in cols if "/" not in m and metric(m).aggregate != "macro"]   # per-item scores exist
        preds = {s: predictions[(b, s)] for s in per}
        benches.append({"name": b, "task": task, "systems": list(per), "metrics": shown,
                        "kinds": sorted({s.category for s in samples[b] if s.category is not None})})
        for sample in samples[b]:
            items.append(_item(b, sample, preds, per, shown, thumbs, int(opts["max_text_chars"])))
    if thumbs.limited:
        notes.append(f"thumbnails for the first {thumbs.max_videos} videos only "
                     "(report_options.max_thumbnail_videos)")
    data = {"systems": systems, "reference": table.reference, "benchmarks": benches, "items": items,
            "scale": table.scale}
    page = _page(str(cfg.get("compare_name") or out.name), table, cis, plots, notes, data, stats[2])
    (tmp / "index.html").write_text(page, encoding="utf-8")
    final = out / "report"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final / "index.html"


def estimate(result: MetricResult, resamples: int, seed: int, confidence: float,
             clusters: Mapping[str, str] | None = None):
    """(value, low, high): the corpus value and its percentile bootstrap CI with the table's draws (corpus
    statistics recomputed per resample; videos resampled when items share one, as in `evals.tables`). low/high
    are None if not computable."""
    v = float(result.value)
    n = len(result.per_item)
    if not math.isfinite(v) or n == 0:
        return (v, None, None)
    resample = result.info.get("resample")
    stat = resample if resample is not None else np.array(list(result.per_item.values()), float)
    labels = None if clusters is None else [clusters.get(k, k) for k in result.per_item]
    dist = bootstrap_distribution(stat, n, resamples, seed, labels)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha])
    return (v, float(low), float(high))


# ------------------------------------------------------------------------------------------------ plots
def _plots(tmp: Path, table, scores, cis, colors, confidence: float, opts: dict, notes: list) -> list[dict]:
    from evals import plots

    made = []
    for b, per in scores.items():
        cols = [m for bb, m in table.columns if bb == b]
        metrics = [m for m in cols if "/" not in m]                # the groups get their own plot
        systems = list(per)
        if metrics:
            name = f"plots/{_slug(b)}_metrics.png"
            plots.metric_bars(tmp / name, b, metrics, systems, cis[b], colors, confidence, table.scale)
            made.append({"src": name, "caption": f"{b}: {', '.join(metrics)} per system, whiskers = "
                                                 f"{100 * confidence:g}% bootstrap CI"})
        kinds = [m.split("/", 1)[1] for m in cols if "/" in m and metric(m).paired_test == "mcnemar"]
        if kinds:
            vals = {s: {("all" if m == "accuracy" else m.split("/", 1)[1]): e for m, e in cis[b][s].items()
                        if m == "accuracy" or m.split("/", 1)[-1] in kinds} for s in systems}
            chance = next((r["accuracy"].info.get("chance") for r in per.values() if "accuracy" in r), None)
            name = f"plots/{_slug(b)}_kinds.png"
            plots.kind_bars(tmp / name, b, ["all"] + kinds, systems, vals, colors, confidence, chance)
            made.append({"src": name, "caption": f"{b}: accuracy by question kind ({', '.join(kinds)}); "
                                                 "dashed = chance"})
    for i, fig in enumerate(opts.get("figures") or ()):     # made by whoever owns them (e.g. the memory study)
        if not isinstance(fig, dict) or not fig.get("path"):
            raise ValueError(f"report_options.figures[{i}]: expected {{path: <png>, caption: <text>}}, got {fig!r}")
        src = Path(fig["path"])
        if not src.is_file():
            notes.append(f"figure {src.name} not found ({src}): not shown")
            continue
        name = f"plots/figure{i}_{_slug(src.stem)}{src.suffix}"
        shutil.copyfile(src, tmp / name)
        made.append({"src": name, "caption": str(fig.get("caption") or src.name)})
    return made


# ------------------------------------------------------------------------------------------------- items
class _Thumbnails:
    """A few frames per video (or per clip span) as small JPEGs, decoded once per (video, span)."""

    def __init__(self, folder: Path, reader, n: int, size: int, max_videos: int):
        self.folder, self.reader, self.n, self.size, self.max_videos = folder, reader, n, size, max_videos
        self.done: dict[tuple, tuple[list[str], str | None]] = {}
        self.limited = False

    def __call__(self, s: Sample) -> tuple[list[str], str | None]:
        if self.reader is None or self.n <= 0:
            return [], None
        span = (s.clip.start, s.clip.end) if s.clip is not None else None
        key = (s.video, span)
        if key not in self.done:
            if len(self.done) >= self.max_videos:
                self.limited = True
                return [], "thumbnails limited"
            self.done[key] = self._make(s.video, span)
        return self.done[key]

    def _make(self, video: str | None, span) -> tuple[list[str], str | None]:
        from PIL import Image

        if not video or not os.path.isfile(video):
            return [], "video not found"
        try:
            frames = self.reader(video) if span is None else self.reader(video, start=span[0], end=span[1])
        except Exception as e:  # noqa: BLE001 - display only: the item shows why
            return [], f"frames unreadable ({type(e).__name__}: {str(e)[:200]})"
        arr = np.asarray(getattr(frames, "array", frames))
        if arr.ndim != 4 or not len(arr):
            return [], "no frames"
        ts = getattr(frames, "timestamps", None)
        stem = hashlib.sha1(repr((video, span)).encode()).hexdigest()[:16]
        paths = []
        for j, i in enumerate(sorted(set(np.linspace(0, len(arr) - 1, self.n).round().astype(int).tolist()))):
            img = Image.fromarray(np.ascontiguousarray(arr[i, ..., :3]).astype(np.uint8))
            img.thumbnail((self.size, self.size))
            name = f"thumbs/{stem}_{j}.jpg"
            img.save(self.folder.parent / name, quality=85)
            paths.append({"src": name, "t": None if ts is None else round(float(ts[i]), 1)})
        return paths, None


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def _item(bench: str, s: Sample, preds: Mapping[str, Mapping[str, Prediction]], per: Mapping,
          metrics: list[str], thumbs: _Thumbnails, max_chars: int) -> dict:
    frames, frames_note = thumbs(s)
    outputs, answers = {}, []
    for system, res in per.items():
        p = preds[system].get(s.uid)
        if p is not None:
            p = with_choice(p, s)   # as scored (a no-op for stored predictions, parsed when written)
        sc = {m: _finite(res[m].per_item.get(s.uid)) for m in metrics if m in res}
        outputs[system] = {"text": None if p is None or p.text is None else p.text[:max_chars],
                           "choice": None if p is None else p.choice,
                           "failure": "no prediction" if p is None else p.failure, "scores": sc}
        ok = p is not None and not p.failure
        answers.append((p.choice if ok else None) if s.task == MCQA else (_norm(p.text) if ok else ""))
    return {"bench": bench, "uid": s.uid, "kind": s.category or "", "video": s.video_id or
            (os.path.basename(s.video) if s.video else None), "duration": s.duration,
            "span": None if s.clip is None else [s.clip.start, s.clip.end], "frames": frames,
            "frames_note": frames_note, "question": s.question, "options": list(s.options), "answer": s.answer,
            "references": [r[:max_chars] for r in s.references], "outputs": outputs,
            "disagree": len(per) > 1 and len(set(answers)) > 1}


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


# -------------------------------------------------------------------------------------------------- page
def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _json_literal(data: Any) -> str:
    """JSON safe inside <script>: no NaN (invalid JSON), no "<" at all ("</script>" or "<!--" in a model's
    output would end or derail the script element; "<" only occurs inside JSON strings, as \\u003c)."""
    def clean(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x
    text = json.dumps(clean(data), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _table_html(table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(b)}<br>{e(m)}</th>" for b, m in table.columns)
    rows = []
    for r in table.rows:
        name = f"{r} (ref)" if r == table.reference else r
        cells = "".join(f"<td>{e(table._fmt(table.cells.get((r, c)), True))}</td>" for c in table.columns)
        rows.append(f'<tr class="sysrow" data-system="{e(r)}"><th>{e(name)}</th>{cells}</tr>')
    notes = table.notes()
    return (f'<table id="comparison"><thead><tr><th>system</th>{head}</tr></thead><tbody>{"".join(rows)}'
            f'</tbody></table><ul class="notes">{"".join(f"<li>{e(n)}</li>" for n in notes)}</ul>')


def _ci_html(table, cis, confidence: float) -> str:
    e, k = html.escape, table.scale
    rows = []
    for b, m in table.columns:
        for s in table.rows:
            v = cis.get(b, {}).get(s, {}).get(m)
            if v is None:
                continue
            ci = "—" if v[1] is None else f"[{v[1] * k:.1f}, {v[2] * k:.1f}]"
            val = "n/a" if not math.isfinite(v[0]) else f"{v[0] * k:.1f}"
            rows.append(f"<tr><td>{e(b)}</td><td>{e(m)}</td><td>{e(s)}</td><td>{val}</td><td>{ci}</td></tr>")
    return (f'<table id="cis"><thead><tr><th>benchmark</th><th>metric</th><th>system</th><th>value</th>'
            f'<th>{100 * confidence:g}% CI</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _page(title: str, table, cis, plots, notes, data, confidence: float) -> str:
    e = html.escape
    figs = "".join(f'<figure><img src="{e(p["src"])}" alt="{e(p["caption"])}"><figcaption>{e(p["caption"])}'
                   f"</figcaption></figure>" for p in plots)
    note_html = "".join(f"<li>{e(n)}</li>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>longvid comparison: {e(title)}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head><body>
<h1>Comparison: {e(title)}</h1>
<h2>Table</h2>{_table_html(table)}
<h2>Per-system values</h2>{_ci_html(table, cis, confidence)}
<h2>Plots</h2><div class="plots">{figs}</div>
{f'<ul id="report-notes" class="notes">{note_html}</ul>' if notes else ''}
<h2>Items</h2>
<div id="filters">
 <label>benchmark <select id="f-bench"><option value="*">all</option></select></label>
 <label>question kind <select id="f-kind"><option value="*">all</option></select></label>
 <label><input type="checkbox" id="f-disagree"> systems disagree</label>
 <span id="shown"></span>
</div>
<table id="items"><thead></thead><tbody></tbody></table>
<script id="report-data" type="application/json">{_json_literal(data)}</script>
<script>{JS}</script>
</body></html>
"""


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px;margin-bottom:1em}
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
#comparison td{white-space:nowrap}
.notes{font-size:12px;color:#555}
.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#555}
#filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ccc;margin-bottom:.5em}
#filters label{margin-right:1.5em}#shown{font-weight:bold}
.strip{white-space:nowrap}.strip img{height:64px;margin-right:2px;image-rendering:pixelated}
.uid{font-family:monospace;font-size:12px}
.opts{margin:.3em 0;padding-left:1.5em}.opts li.gold{font-weight:bold;color:#176117}
.out{max-width:28em;white-space:pre-wrap;max-height:12em;overflow:auto}
.score{font-family:monospace;font-size:12px;color:#333}
.right{background:#eaf7ea}.wrong{background:#fbeaea}.fail{color:#a00;font-style:italic}
.muted{color:#888}
"""

JS = r"""
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  function el(tag, cls, text) {
    var x = document.createElement(tag);
    if (cls) x.className = cls;
    if (text !== undefined && text !== null) x.textContent = String(text);
    return x;
  }
  function fmt(v) { return v === null || v === undefined ? "n/a" : (v * D.scale).toFixed(1); }
  var byName = {};
  D.benchmarks.forEach(function (b) { byName[b.name] = b; });

  var head = el("tr");
  ["item", "frames", "question / reference"].concat(D.systems).forEach(function (h) { head.appendChild(el("th", null, h)); });
  document.querySelector("#items thead").appendChild(head);

  var tbody = document.querySelector("#items tbody");
  var rows = [];
  D.items.forEach(function (it) {
    var b = byName[it.bench];
    var tr = el("tr", "item");
    tr.dataset.bench = it.bench;
    tr.dataset.kind = it.kind;
    tr.dataset.disagree = it.disagree ? "1" : "0";
    tr.dataset.uid = it.uid;
    var c0 = el("td");
    c0.appendChild(el("div", null, it.bench));
    c0.appendChild(el("div", "uid", it.uid));
    if (it.kind) c0.appendChild(el("div", "muted", "kind: " + it.kind));
    if (it.video) c0.appendChild(el("div", "muted", "video: " + it.video));
    if (it.span) c0.appendChild(el("div", "muted", "span: " + it.span[0].toFixed(1) + "-" + it.span[1].toFixed(1) + " s"));
    if (it.disagree) c0.appendChild(el("div", "muted", "systems disagree"));
    tr.appendChild(c0);

    var c1 = el("td", "strip");
    it.frames.forEach(function (f) {
      var img = el("img");
      img.src = f.src;
      img.alt = "frame" + (f.t === null ? "" : " at " + f.t + " s");
      img.title = img.alt;
      c1.appendChild(img);
    });
    if (it.frames_note) c1.appendChild(el("div", "muted", it.frames_note));
    tr.appendChild(c1);

    var c2 = el("td", "out");
    if (b.task === "mcqa") {
      c2.appendChild(el("div", null, it.question));
      var ol = el("ol", "opts");
      ol.type = "A";
      it.options.forEach(function (o, i) { ol.appendChild(el("li", i === it.answer ? "gold" : null, o)); });
      c2.appendChild(ol);
      if (it.answer === null) c2.appendChild(el("div", "muted", "answer not public (not scored)"));
    } else {
      it.references.forEach(function (r, i) {
        c2.appendChild(el("div", null, (it.references.length > 1 ? "ref " + (i + 1) + ": " : "") + r));
      });
    }
    tr.appendChild(c2);

    D.systems.forEach(function (s) {
      var o = it.outputs[s];
      var td = el("td", "out");
      if (!o) { td.appendChild(el("span", "muted", "not run")); tr.appendChild(td); return; }
      if (b.task === "mcqa" && o.scores.accuracy !== undefined && o.scores.accuracy !== null) {
        td.className += o.scores.accuracy > 0.5 ? " right" : " wrong";
      }
      if (o.failure) td.appendChild(el("div", "fail", "failed: " + o.failure));
      if (b.task === "mcqa" && !o.failure) {
        td.appendChild(el("div", null, "choice: " + (o.choice === null ? "unparseable" : LETTERS.charAt(o.choice))));
      }
      if (o.text) td.appendChild(el("div", null, o.text));
      var parts = [];
      b.metrics.forEach(function (m) {
        if (!(m in o.scores)) return;
        var v = o.scores[m];
        parts.push(m === "accuracy" ? (v === null ? "not scored" : "acc " + (v > 0.5 ? "1" : "0")) : m + " " + fmt(v));
      });
      if (parts.length) td.appendChild(el("div", "score", parts.join(" · ")));
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
    rows.push(tr);
  });

  function addOptions(sel, values, labels) {
    values.forEach(function (v, i) { var o = el("option", null, labels ? labels[i] : v); o.value = v; sel.appendChild(o); });
  }
  var fb = document.getElementById("f-bench"), fk = document.getElementById("f-kind"),
      fd = document.getElementById("f-disagree"), shown = document.getElementById("shown");
  addOptions(fb, D.benchmarks.map(function (b) { return b.name; }));
  var kinds = [], noKind = false;
  D.items.forEach(function (it) { if (!it.kind) noKind = true; else if (kinds.indexOf(it.kind) < 0) kinds.push(it.kind); });
  kinds.sort();
  addOptions(fk, kinds);
  if (noKind && kinds.length) addOptions(fk, [""], ["(none)"]);

  function apply() {
    var n = 0;
    rows.forEach(function (tr) {
      var ok = (fb.value === "*" || tr.dataset.bench === fb.value) &&
               (fk.value === "*" || tr.dataset.kind === fk.value) &&
               (!fd.checked || tr.dataset.disagree === "1");
      tr.style.display = ok ? "" : "none";
      if (ok) n += 1;
    });
    shown.textContent = n + " of " + rows.length + " items shown";
  }
  [fb, fk, fd].forEach(function (x) { x.addEventListener("change", apply); });
  apply();
})();
"""
