"""Time decoding with the key/value cache against decoding without it, side by side in one process.

    python benchmarks/bench_generate.py                               # gpt2-tiny, summarization's shapes
    python benchmarks/bench_generate.py --model gpt2 --batch-size 4   # GPT-2 small

The reference is gpt_exp's own uncached decoding (`generate(..., use_cache=False)`: the whole batch runs
through the model again for every new token), the way summaries were decoded before the cache. Both
produce the same tokens (checked here on every run, and in tests/test_generate.py). The shapes default
to `task=summarization`'s: the bert-base-chinese vocabulary (21,128), 16 prompts of ~200 tokens,
32 new tokens, greedy and 4-beam search. No eos is given, so every row decodes all its tokens.

The first call of each side compiles its graphs (reported apart); the timed calls come after it, in
turns (cached, uncached, cached, ...), so a busy machine slows both alike.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("GLOG_v", "3")

import mindspore as ms  # noqa: E402
import numpy as np  # noqa: E402

from gpt_exp.generate import generate  # noqa: E402
from gpt_exp.model import GPT, GPTConfig  # noqa: E402

MODELS = {  # the shapes of conf/model/*.yaml
    "gpt2-tiny": dict(n_layer=4, n_head=4, n_embd=128, n_positions=256),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-tiny", choices=sorted(MODELS))
    parser.add_argument("--vocab-size", type=int, default=21128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prompt-len", type=int, default=200, help="the longest prompt; the others are shorter")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--strategies", nargs="+", default=["greedy", "beam"])
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per side")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    ms.set_device("CPU")
    ms.set_context(runtime_num_threads=args.threads)
    ms.set_seed(0)
    model = GPT(GPTConfig("gpt2", vocab_size=args.vocab_size, **MODELS[args.model]))
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.prompt_len // 2, args.prompt_len + 1, args.batch_size)
    lengths[0] = args.prompt_len
    prompts = [list(map(int, rng.integers(1, args.vocab_size, n))) for n in lengths]

    rows = []
    for strategy in args.strategies:
        def run(use_cache: bool, strategy: str = strategy):
            start = time.perf_counter()
            out = generate(model, prompts, args.new_tokens, strategy=strategy, num_beams=args.num_beams,
                           use_cache=use_cache)
            return time.perf_counter() - start, out

        first = {use_cache: run(use_cache) for use_cache in (True, False)}
        if first[True][1] != first[False][1]:
            raise SystemExit(f"{strategy}: cached and uncached decoding chose different tokens")
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for use_cache in (True, False):
                times[use_cache].append(run(use_cache)[0])
        for use_cache in (True, False):
            seconds = min(times[use_cache])
            rows.append((strategy, "cached" if use_cache else "uncached (reference)", first[use_cache][0], seconds,
                         args.batch_size * args.new_tokens / seconds))
        speedup = min(times[False]) / min(times[True])
        rows.append((strategy, "speed-up", None, None, speedup))

    print(f"\n{args.model}, vocab {args.vocab_size}, {args.batch_size} prompts of {lengths.min()}-{lengths.max()} "
          f"tokens, {args.new_tokens} new tokens, {args.threads} threads, MindSpore {ms.__version__}, "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("| strategy | decoding | first call (compiles) s | s per call | new tokens/s |")
    print("|---|---|---:|---:|---:|")
    for strategy, side, first_s, seconds, rate in rows:
        if side == "speed-up":
            print(f"| {strategy} | **cached / uncached** | | | **{rate:.1f}x** |")
        else:
            print(f"| {strategy} | {side} | {first_s:.1f} | {seconds:.2f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
