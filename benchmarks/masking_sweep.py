"""Score the masking sweep (`longvid-train -m experiment=sweep_masking`): zero-shot retrieval of every
`sweep_*` run on the synthetic test clips, as one table (Markdown + CSV) and one plot.

    python benchmarks/masking_sweep.py [--train-dir outputs/train] [--out outputs/benchmarks] [--split test]
"""
import argparse
import json
from pathlib import Path

from evals.synthetic import SyntheticBenchmark, SyntheticConfig
from longvid.model.dual import DualEncoder, load_tokenizer
from longvid.retrieval import evaluate_retrieval


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-dir", default="outputs/train")
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--out", default="outputs/benchmarks")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    runs = sorted(p for p in Path(args.train_dir).glob("sweep_*") if (p / "model" / "model.safetensors").exists())
    if not runs:
        raise SystemExit(f"no finished sweep_* runs under {args.train_dir}: run "
                         "`longvid-train -m experiment=sweep_masking` first")
    rows = []
    for run in runs:
        import yaml

        cfg = yaml.safe_load((run / "config.yaml").read_text())
        bench = SyntheticBenchmark(args.data, task="captioning", split=args.split,
                                   generator=SyntheticConfig(**cfg["synthetic"]).__dict__)
        model = DualEncoder.from_pretrained(run / "model")
        r = evaluate_retrieval(model, load_tokenizer(run / "model"), bench.load(), progress=False)
        rows.append({"attention": cfg["model"]["encoder"]["attention"], "mask_ratio": cfg["mask_ratio"],
                     "steps": cfg["trainer"]["max_steps"], **r})
        print(json.dumps(rows[-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ["attention", "mask_ratio", "steps", "t2v/R@1", "v2t/R@1", "t2v/R@5", "t2v/MdR", "n_videos", "n_texts"]
    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    fmt = lambda k, v: f"{v:.2f}" if k == "mask_ratio" else f"{v:.1f}" if isinstance(v, float) else str(v)
    md += ["| " + " | ".join(fmt(k, r[k]) for k in keys) + " |" for r in rows]
    (out / "masking_sweep.md").write_text("\n".join(md) + "\n")
    (out / "masking_sweep.csv").write_text("\n".join([",".join(keys)] + [",".join(str(r[k]) for k in keys)
                                                                         for r in rows]) + "\n")
    print("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for att in ("joint", "factorized"):
        pts = sorted((r["mask_ratio"], r["t2v/R@1"]) for r in rows if r["attention"] == att)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=att)
    ax.set_xlabel("training mask ratio")
    ax.set_ylabel("zero-shot text->video R@1")
    ax.set_title("Masking vs retrieval (synthetic clips)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "masking_sweep.png", dpi=120)
    print(f"wrote {out}/masking_sweep.md, .csv, .png")


if __name__ == "__main__":
    main()
