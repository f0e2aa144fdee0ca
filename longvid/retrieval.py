"""Zero-shot text<->video retrieval of any saved encoder on any benchmark whose items have a video (or clip)
and a reference text, scored by the shared evaluation layer (R@1/5/10, median rank, both directions).

    longvid-retrieval checkpoint=outputs/train/stage2_long/model benchmark=synthetic_summary
    longvid-retrieval checkpoint=... random_init=true      # the same architecture, untrained
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from evals.contracts import Sample
from evals.metrics.retrieval import retrieval_scores
from longvid.data.datasets import ClipSpec, fixed_length, to_tensor
from longvid.data.video import read_frames


@torch.no_grad()
def embed_samples(model, tokenizer, samples: Sequence[Sample], num_frames: int, size: int,
                  batch_size: int = 8, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised embeddings: one video per sample, one text per distinct first reference."""
    from tqdm import tqdm

    model.eval()
    device = next(model.parameters()).device
    spec = ClipSpec(num_frames, size)
    texts = list(dict.fromkeys(s.references[0] for s in samples))
    vids, txts = [], []
    for i in range(0, len(texts), batch_size):
        t = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=model.cfg.text.max_length,
                      return_tensors="pt")
        txts.append(model.encode_text(t["input_ids"].to(device), t["attention_mask"].to(device)))
    for i in tqdm(range(0, len(samples), batch_size), desc="retrieval", disable=not progress):
        batch = samples[i:i + batch_size]
        frames = []
        for s in batch:
            start, end = (s.clip.start, s.clip.end) if s.clip else (0.0, None)
            frames.append(to_tensor(fixed_length(read_frames(s.video, spec.sampling(), start, end).array,
                                                 num_frames)))
        vids.append(model.encode_video(torch.stack(frames).to(device)))
    norm = torch.nn.functional.normalize
    return norm(torch.cat(vids).float(), dim=-1).cpu(), norm(torch.cat(txts).float(), dim=-1).cpu()


def evaluate_retrieval(model, tokenizer, samples: Sequence[Sample], num_frames: int | None = None,
                       batch_size: int = 8, progress: bool = True) -> dict[str, float]:
    samples = [s for s in samples if s.references]
    if not samples:
        raise ValueError("retrieval needs items with a reference text")
    v, t = embed_samples(model, tokenizer, samples, num_frames or model.cfg.encoder.num_frames,
                         model.cfg.encoder.image_size, batch_size, progress)
    row = {text: i for i, text in enumerate(dict.fromkeys(s.references[0] for s in samples))}
    positives = [[] for _ in row]
    for j, s in enumerate(samples):
        positives[row[s.references[0]]].append(j)  # a sentence shared by several clips: all are right
    return {**retrieval_scores((t @ v.T).numpy(), positives), "n_videos": len(samples), "n_texts": len(row)}


def main() -> None:
    from hydra.utils import instantiate

    from evals import hydra_main
    from longvid.model.dual import DualConfig, DualEncoder, load_tokenizer

    def _main(cfg) -> None:
        if cfg.random_init:
            torch.manual_seed(cfg.seed)
            conf = json.loads((Path(cfg.checkpoint) / "config.json").read_text())
            model = DualEncoder(DualConfig.from_dict(conf))
        else:
            model = DualEncoder.from_pretrained(cfg.checkpoint)
        res = evaluate_retrieval(model, load_tokenizer(cfg.checkpoint), instantiate(cfg.benchmark).load(),
                                 cfg.num_frames, cfg.batch_size)
        for k, v in res.items():
            print(f"{k:>10}: {v:.2f}")
        if cfg.out:
            Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
            Path(cfg.out).write_text(json.dumps(res, indent=1))

    hydra_main("retrieval", _main)


if __name__ == "__main__":
    main()
