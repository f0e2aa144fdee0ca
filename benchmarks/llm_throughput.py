"""LLM aggregation throughput: the same 64 caption-QA prompts through three backends, side by side.

    python benchmarks/llm_throughput.py --model cache/smollm2/SmolLM2-135M-Instruct   # longvid-smollm2 writes it

(a) HF transformers generate, sequential (what LLoVi-style code does), in its fastest dtype here (fp32: this
    CPU has no native bf16, see --hf-dtype);
(b) HF generate, batched (left padding);
(c) a vLLM server launched for the run, with concurrent requests.
Every prompt is ~360 tokens of timestamped captions + a question (the modular baseline's real prompt,
`mcqa_letter.v1`), each with different captions, so the server's prefix cache is cold apart from the
shared system prompt. Every backend generates exactly `--max-tokens` tokens (ignore_eos), greedy. No response
cache. Prints prompts/s and output tokens/s, and the ratios (c)/(a) (target >= 3) and (c)/(b).
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "pink"]
SHAPES = ["square", "circle", "triangle", "star", "cross", "diamond"]
ACTIONS = ["appears in the top left corner", "moves slowly to the right", "grows to twice its size",
           "spins in place", "changes colour", "leaves the frame at the bottom", "bounces off the wall",
           "shrinks and fades", "moves towards the centre"]


def prompts(n: int, segments: int, seed: int = 0) -> list[list[dict]]:
    from baselines.prompts import format_captions, load_prompt
    from evals.parsing import format_options

    rng = random.Random(seed)
    p = load_prompt("mcqa_letter.v1")
    out = []
    for _ in range(n):
        caps = [(16 * i, 16 * (i + 1), f"a {rng.choice(COLOURS)} {rng.choice(SHAPES)} {rng.choice(ACTIONS)}, "
                 f"then a {rng.choice(COLOURS)} {rng.choice(SHAPES)} {rng.choice(ACTIONS)}")
                for i in range(segments)]
        opts = [f"the {rng.choice(COLOURS)} {rng.choice(SHAPES)}" for _ in range(5)]
        out.append(p.messages(captions=format_captions(caps), question="Which object spun first?",
                              options=format_options(opts)))
    return out


def timed(llm, convs, sampling) -> tuple[float, list[str]]:
    t = time.perf_counter()
    texts = llm.chat(convs, sampling)
    return time.perf_counter() - t, texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="local HF folder of the LLM (e.g. SmolLM2-135M-Instruct)")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--segments", type=int, default=11, help="caption lines per prompt (11: ~360 tokens of captions + question)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16, help="(b) HF batch size")
    ap.add_argument("--concurrency", type=int, default=16, help="(c) concurrent requests to the server")
    ap.add_argument("--hf-dtype", default="float32", help="float32 | bfloat16 (bf16 is emulated, hence slow, on "
                    "CPUs without AVX512-BF16/AMX, such as this machine's)")
    ap.add_argument("--vllm-dtype", default="float32")
    ap.add_argument("--skip", nargs="*", default=[], choices=["hf_seq", "hf_batch", "vllm"])
    ap.add_argument("--out", default="outputs/benchmarks/llm_throughput.json")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from baselines.llm.hf import HFChat
    from evals.contracts import Sampling

    convs = prompts(args.n, args.segments)
    tok = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    lens = [len(tok(tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False)["input_ids"]) for c in convs]
    print(f"{args.n} prompts, {sum(lens) / len(lens):.0f} prompt tokens on average "
          f"({min(lens)}-{max(lens)}), {args.max_tokens} output tokens each, greedy, no response cache")
    sampling = Sampling(max_tokens=args.max_tokens, ignore_eos=True)
    rows: dict[str, dict] = {}

    def record(name, seconds, texts, note=""):
        out_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
        rows[name] = {"seconds": round(seconds, 2), "prompts_per_s": round(len(texts) / seconds, 3),
                      "output_tokens_per_s": round(out_tokens / seconds, 1), "note": note}
        print(f"  {name:<10} {seconds:7.1f} s  {len(texts) / seconds:6.2f} prompts/s  "
              f"{out_tokens / seconds:7.1f} output tok/s  {note}", flush=True)

    if "hf_seq" not in args.skip or "hf_batch" not in args.skip:
        hf = HFChat(args.model, dtype=args.hf_dtype, batch_size=1)
        hf.load()
        hf.chat(convs[:1], Sampling(max_tokens=2))                    # warm-up
        if "hf_seq" not in args.skip:
            record("hf_seq", *timed(hf, convs, sampling), note=f"(a) sequential, {args.hf_dtype}")
        if "hf_batch" not in args.skip:
            hf.batch_size = args.batch_size
            record("hf_batch", *timed(hf, convs, sampling), note=f"(b) batch {args.batch_size}, {args.hf_dtype}")
        hf.close()
    if "vllm" not in args.skip:
        from baselines.llm.server import OpenAIServerLLM, VLLMServer

        with VLLMServer(model_path=args.model, served_model_name="bench", dtype=args.vllm_dtype) as server:
            llm = OpenAIServerLLM(url=server.url, model="bench", concurrency=args.concurrency, retries=0,
                                  timeout=600)
            llm.chat([[{"role": "user", "content": "hi"}]], Sampling(max_tokens=2))   # warm-up, tiny prefix
            record("vllm", *timed(llm, convs, sampling), note=f"(c) server, {args.concurrency} concurrent, {args.vllm_dtype}")
    a, b, c = (rows.get(k, {}).get("prompts_per_s") for k in ("hf_seq", "hf_batch", "vllm"))
    if a and c:
        print(f"(c) vLLM server vs (a) HF sequential: {c / a:.2f}x prompts/s (target >= 3x): "
              f"{'PASS' if c / a >= 3 else 'FAIL'}")
    if b and c:
        print(f"(c) vLLM server vs (b) HF batched:    {c / b:.2f}x prompts/s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "prompt_tokens_mean": sum(lens) / len(lens),
                                          "rows": rows}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
