"""The synthetic long-range benchmark: deterministic *event-story* videos with known answers.

A small canvas where a sequence of events happens at 1 FPS — an object (shape x colour) appears, moves,
grows, shrinks, spins, changes colour or fades away; one event per segment of a few seconds. Written as real
H.264 mp4 files with annotations in the official formats, so the same loaders read them:
- YouCook2 (`youcook2/youcookii_annotations_trainval.json`): one sentence per event -> summarization and
  segment captioning; subsets `training` / `validation` / `testing`;
- EgoSchema (`egoschema/<split>/questions.json` + `subset_answers.json`), plus `kinds.json` (q_uid ->
  `local` | `long-range`): local questions are answerable from one event's segment; long-range ones need
  the whole video (what happened next, counts, which came first);
- pre-training pairs (`pretrain/<split>/{clips,videos,frames}.jsonl`): event clips + sentence, whole videos +
  summary, single frames (video + time) + description; video paths relative to the pairs file.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240),
           "yellow": (240, 220, 40), "purple": (170, 60, 210), "white": (235, 235, 235)}
ACTIONS = ("appears", "fades away", "moves left", "moves right", "moves up", "moves down",
           "grows", "shrinks", "spins", "changes colour")
PAST = {"appears": "appeared", "fades away": "faded away", "moves left": "moved left",
        "moves right": "moved right", "moves up": "moved up", "moves down": "moved down",
        "grows": "grew", "shrinks": "shrank", "spins": "spun", "changes colour": "changed colour"}
SPLITS = {"train": "training", "val": "validation", "test": "testing"}
FORMAT = 2   # of the written files (2: segment sentences end with "." in the annotations; in the digest)


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 0
    n_train: int = 200            # videos per split
    n_val: int = 20
    n_test: int = 40
    min_duration: int = 16        # seconds, at 1 FPS
    max_duration: int = 64
    min_event: int = 4            # seconds per event
    max_event: int = 12
    canvas: int = 64              # pixels (square)
    render_fps: int = 1           # frames written per second of video
    questions_per_video: int = 2  # one local and one long-range where possible

    def __post_init__(self):
        if not 1 <= self.min_event <= self.max_event:
            raise ValueError("need 1 <= min_event <= max_event")
        if not self.min_event <= self.min_duration <= self.max_duration:
            raise ValueError("need min_event <= min_duration <= max_duration")
        if self.canvas < 16 or self.canvas % 2:
            raise ValueError("canvas must be an even number of pixels >= 16 (H.264 4:2:0)")

    def digest(self) -> str:
        return hashlib.sha1(json.dumps({**asdict(self), "format": FORMAT}, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Event:
    start: int
    end: int
    shape: str
    colour: str
    action: str
    new_colour: str | None = None   # for "changes colour"

    @property
    def obj(self) -> str:
        return f"{self.colour} {self.shape}"

    def sentence(self) -> str:
        if self.action == "changes colour":
            return f"a {self.obj} turns {self.new_colour}"
        return f"a {self.obj} {self.action}"

    def past(self) -> str:
        if self.action == "changes colour":
            return f"the {self.obj} turned {self.new_colour}"
        return f"the {self.obj} {PAST[self.action]}"


def make_story(rng: np.random.Generator, cfg: SyntheticConfig) -> list[Event]:
    duration = int(rng.integers(cfg.min_duration, cfg.max_duration + 1))
    bounds, t = [], 0
    while t < duration:
        d = int(rng.integers(cfg.min_event, cfg.max_event + 1))
        if duration - (t + d) < cfg.min_event:  # last event takes the rest
            d = duration - t
        bounds.append((t, t + d))
        t += d
    events = []
    for s, e in bounds:
        shape, colour = str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS)))
        actions = [a for a in ACTIONS if not (shape == "circle" and a == "spins")]
        action = str(rng.choice(actions))
        new = str(rng.choice([c for c in COLOURS if c != colour])) if action == "changes colour" else None
        events.append(Event(s, e, shape, colour, action, new))
    return events


def _mask(shape: str, n: int, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    h = size / 2
    if shape == "circle":
        return u * u + v * v <= h * h
    if shape == "square":
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if shape == "triangle":  # apex up
        return (v <= h) & (np.abs(u) <= (v + h) / 2)
    if shape == "cross":
        w = size / 6
        return ((np.abs(u) <= w) & (np.abs(v) <= h)) | ((np.abs(v) <= w) & (np.abs(u) <= h))
    raise ValueError(shape)


def render_event(ev: Event, p: float, n: int) -> np.ndarray:
    """Frame (n, n, 3) uint8 of event `ev` at progress p in [0, 1)."""
    frame = np.full((n, n, 3), 16, np.uint8)
    cx = cy = n / 2
    size, angle, alpha = n * 0.35, 0.0, 1.0
    colour = np.array(COLOURS[ev.colour], np.float32)
    travel = n * 0.3 * (2 * p - 1)
    a = ev.action
    if a == "appears":
        alpha = min(1.0, 0.15 + 1.5 * p)
    elif a == "fades away":
        alpha = max(0.0, 1.0 - 1.5 * p)
    elif a.startswith("moves"):
        d = a.split()[1]
        cx += {"left": -travel, "right": travel}.get(d, 0.0)
        cy += {"up": -travel, "down": travel}.get(d, 0.0)
    elif a == "grows":
        size *= 0.5 + p
    elif a == "shrinks":
        size *= 1.5 - p
    elif a == "spins":
        angle = 2 * math.pi * p
    elif a == "changes colour" and p >= 0.5:
        colour = np.array(COLOURS[ev.new_colour], np.float32)
    m = _mask(ev.shape, n, cx, cy, size, angle)
    frame[m] = (alpha * colour + (1 - alpha) * 16).astype(np.uint8)
    return frame


def write_video(path: Path, events: list[Event], cfg: SyntheticConfig) -> None:
    import av

    fps, n = cfg.render_fps, cfg.canvas
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width = st.height = n
        st.pix_fmt = "yuv420p"
        st.options = {"crf": "12", "preset": "veryfast", "threads": "1"}
        for ev in events:
            k = (ev.end - ev.start) * fps
            for i in range(k):
                img = render_event(ev, (i + 0.5) / k, n)
                for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- questions
def _options(rng, answer: str, pool: list[str]) -> tuple[list[str], int]:
    distract = [x for x in dict.fromkeys(pool) if x != answer]
    rng.shuffle(distract)
    opts = [answer] + distract[:4]
    if len(opts) < 5:
        raise ValueError("not enough distinct options")
    perm = rng.permutation(5)
    opts = [opts[i] for i in perm]
    return opts, opts.index(answer)


def _fabricated(rng, k: int) -> list[str]:
    out = []
    for _ in range(k):
        ev = Event(0, 1, str(rng.choice(SHAPES)), str(rng.choice(list(COLOURS))),
                   str(rng.choice(ACTIONS[:-1])))
        out.append(ev.past())
    return out


def local_questions(rng, events: list[Event]) -> list[tuple[str, str, list[str]]]:
    """(question, answer, distractor pool) answerable from one event's segment."""
    out = []
    by_obj = {}
    for ev in events:
        by_obj.setdefault(ev.obj, []).append(ev)
    for obj, evs in by_obj.items():
        if len(evs) == 1:
            ans = PAST[evs[0].action]
            out.append((f"What did the {obj} do?", f"it {ans}", [f"it {PAST[a]}" for a in ACTIONS]))
    by_sa = {}
    for ev in events:
        by_sa.setdefault((ev.shape, ev.action), []).append(ev)
    for (shape, action), evs in by_sa.items():
        if len(evs) == 1 and action != "changes colour":
            out.append((f"What colour was the {shape} that {PAST[action]}?", evs[0].colour, list(COLOURS)))
    return out


def long_range_questions(rng, events: list[Event]) -> list[tuple[str, str, list[str]]]:
    """(question, answer, distractor pool) that need more than one segment."""
    out = []
    pasts = [ev.past() for ev in events]
    for i in range(len(events) - 1):
        if pasts.count(pasts[i]) == 1:
            others = [p for j, p in enumerate(pasts) if j != i + 1 and p != pasts[i + 1]]
            out.append((f"What happened right after {pasts[i]}?", pasts[i + 1],
                        others + _fabricated(rng, 8)))
    for action, verb in (("spins", "spin"), ("moves left", "move left"), ("grows", "grow"),
                         ("changes colour", "change colour"), ("appears", "appear")):
        c = sum(ev.action == action for ev in events)
        lo = int(rng.integers(max(0, c - 4), c + 1))
        out.append((f"How many times did an object {verb}?", str(c), [str(x) for x in range(lo, lo + 5)]))
    uniq = list(dict.fromkeys(pasts))
    if len(uniq) >= 5:
        pick = sorted(rng.choice(len(uniq), 5, replace=False).tolist())
        chosen = [uniq[i] for i in pick]
        out.append(("Which of these happened first?", chosen[0], chosen[1:]))
    return out


def make_questions(rng, vid: str, events: list[Event], k: int) -> list[dict]:
    qs = []
    for kind, cands in (("local", local_questions(rng, events)),
                        ("long-range", long_range_questions(rng, events))):
        if not cands or len(qs) >= k:
            continue
        question, answer, pool = cands[int(rng.integers(len(cands)))]
        opts, ans = _options(rng, answer, pool)
        qs.append({"q_uid": f"{vid}_q{len(qs)}", "google_drive_id": "", "video_id": vid,
                   "question": question, **{f"option {i}": o for i, o in enumerate(opts)},
                   "_answer": ans, "_kind": kind})
    return qs


# ---------------------------------------------------------------------------------------- writing
def _video(args):
    idx, split, cfg, root = args
    rng = np.random.default_rng([cfg.seed, idx])
    vid = f"syn_{split}_{idx:05d}"
    events = make_story(rng, cfg)
    path = root / "videos" / f"{vid}.mp4"
    if not path.exists():
        write_video(path, events, cfg)
    return vid, split, events, make_questions(rng, vid, events, cfg.questions_per_video)


def generate(cfg: SyntheticConfig, root: str | os.PathLike, workers: int = 2, progress: bool = True) -> Path:
    """Write the benchmark under `root/<config digest>/` (skipped if already complete); return that dir."""
    from tqdm import tqdm

    out = Path(root) / cfg.digest()
    if (out / "DONE").exists():
        return out
    (out / "videos").mkdir(parents=True, exist_ok=True)
    jobs, start = [], 0
    for split, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)):
        jobs += [(start + i, split, cfg, out) for i in range(n)]
        start += n
    bar = dict(total=len(jobs), desc=f"synthetic videos -> {out}", disable=not progress, unit="video")
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = list(tqdm(pool.imap(_video, jobs, chunksize=8), **bar))
    else:
        results = [_video(j) for j in tqdm(jobs, **bar)]
    _write_annotations(out, cfg, results)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    (out / "DONE").write_text("complete\n")
    return out


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) if not isinstance(obj, list) or not obj or
                   not isinstance(obj[0], str) else "\n".join(obj) + "\n")
    os.replace(tmp, path)


def _write_annotations(out: Path, cfg: SyntheticConfig, results) -> None:
    db, per_split = {}, {s: {"q": [], "a": {}, "k": {}, "clips": [], "videos": [], "frames": []}
                         for s in SPLITS}
    for vid, split, events, qs in results:
        duration = events[-1].end
        db[vid] = {"duration": float(duration), "subset": SPLITS[split], "recipe_type": "synthetic",
                   "video_url": "", "annotations": [
                       {"segment": [ev.start, ev.end], "id": i, "sentence": ev.sentence() + "."}
                       for i, ev in enumerate(events)]}
        d = per_split[split]
        for q in qs:
            d["a"][q["q_uid"]] = q.pop("_answer")
            d["k"][q["q_uid"]] = q.pop("_kind")
            d["q"].append(q)
        video = f"../../videos/{vid}.mp4"  # relative to the pairs file in pretrain/<split>/
        summary = ". ".join(ev.sentence() for ev in events) + "."
        d["videos"].append(json.dumps({"video": video, "text": summary, "duration": duration}))
        for ev in events:
            d["clips"].append(json.dumps({"video": video, "start": ev.start, "end": ev.end,
                                          "text": ev.sentence()}))
            d["frames"].append(json.dumps({"video": video, "time": (ev.start + ev.end) / 2,
                                           "text": f"a {ev.obj}" if ev.action != "changes colour"
                                           else f"a {ev.new_colour} {ev.shape}"}))
    _dump(out / "youcook2" / "youcookii_annotations_trainval.json", {"database": db})
    for split, d in per_split.items():
        _dump(out / "egoschema" / split / "questions.json", d["q"])
        _dump(out / "egoschema" / split / "subset_answers.json", d["a"])
        _dump(out / "egoschema" / split / "kinds.json", d["k"])
        for kind in ("clips", "videos", "frames"):
            _dump(out / "pretrain" / split / f"{kind}.jsonl", d[kind])


def main(argv: list[str] | None = None) -> None:
    """`longvid-synth out_dir [key=value ...]`: write the benchmark for a SyntheticConfig."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        raise SystemExit("usage: longvid-synth OUT_DIR [seed=0 n_train=200 n_val=20 n_test=40 ...]")
    kw = {}
    for a in args[1:]:
        k, _, v = a.partition("=")
        if k not in SyntheticConfig.__dataclass_fields__:
            raise SystemExit(f"unknown key {k!r}; valid: {list(SyntheticConfig.__dataclass_fields__)}")
        kw[k] = int(v)
    print(generate(SyntheticConfig(**kw), args[0]))


class SyntheticBenchmark:
    """The synthetic benchmark as a loader: generates the data on first use (cached by config digest under
    `root`), then reads it with the official-format loaders (YouCook2 / EgoSchema)."""

    def __init__(self, root: str, task: str, split: str = "test", generator: dict | None = None,
                 name: str | None = None, limit: int | None = None, workers: int = 2):
        from evals.contracts import CAPTIONING, MCQA, SUMMARIZATION

        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if task not in (SUMMARIZATION, CAPTIONING, MCQA):
            raise ValueError(f"synthetic task must be summarization, captioning or mcqa, got {task!r}")
        self.root, self.task, self.split, self.limit, self.workers = root, task, split, limit, workers
        self.config = SyntheticConfig(**(generator or {}))
        self.name = name or f"synthetic_{task}"

    def directory(self) -> Path:
        return generate(self.config, self.root, workers=self.workers)

    def _loader(self, split: str):
        from evals.benchmarks.dense import YouCook2
        from evals.benchmarks.mcqa import EgoSchema
        from evals.contracts import MCQA

        d = self.directory()
        if self.task == MCQA:
            q = d / "egoschema" / split
            return EgoSchema(q / "questions.json", q / "subset_answers.json", d / "videos", name=self.name,
                             categories=q / "kinds.json", video_field="video_id", limit=self.limit)
        return YouCook2(d / "youcook2" / "youcookii_annotations_trainval.json", d / "videos",
                        split=SPLITS[split], task=self.task, name=self.name, limit=self.limit)

    def load(self):
        return self._loader(self.split).load()

    def train_paragraphs(self) -> list[list[str]]:
        return self._loader(self.split).train_paragraphs()


if __name__ == "__main__":
    main()
