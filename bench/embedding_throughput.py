"""Throughput of the local embedding model on 1,000-character spans: the embedder of earlier
releases against today's, measured in the same run, alternating, so that a busy machine slows
both alike.

- before: each span's text cut to 1,000 characters (450 of input, 450 of output), read by the
  model over up to 256 word pieces in float32 (`RETRACE_LOCAL_EMBEDDING=full` still selects it);
- after: the text cut to what the model reads (embeddings.text.EMBED_CHARS), 128 word pieces,
  linear layers in int8 (the default, `fast`).

Each variant embeds the same distinct texts, sorted into batches by length as the server does.
Also prints the cosine similarity between the two variants' vectors of each text.

    python bench/embedding_throughput.py [--spans 256] [--rounds 5] [--threads 1]

`--threads 1` is the in-process indexer of `serve`; `--threads 0` leaves PyTorch's default
(all cores), as `retrace-server worker` does.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _spans import chat_span
from retrace_server.embeddings.backends import MAX_TOKENS, LocalEmbedder
from retrace_server.embeddings.text import EMBED_CHARS, PART_CHARS, span_text

VARIANTS = {
    "before": (LocalEmbedder(fast=False), {"limit": 1000, "part_chars": 450}),
    "after": (LocalEmbedder(fast=True), {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads; 0 = PyTorch's default")
    parser.add_argument(
        "--also-tokens",
        type=int,
        nargs="*",
        default=[],
        help="also measure the fast embedder reading at most this many word pieces (and text to match)",
    )
    args = parser.parse_args()
    for tokens in args.also_tokens:
        chars = EMBED_CHARS * tokens // MAX_TOKENS
        VARIANTS[f"after-{tokens}"] = (
            LocalEmbedder(max_tokens=tokens),
            {"limit": chars, "part_chars": PART_CHARS * tokens // MAX_TOKENS},
        )
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(16)
    spans = [chat_span(rng, n) for n in range(args.spans)]
    texts = {name: [span_text(s, **options) for s in spans] for name, (_, options) in VARIANTS.items()}
    print(
        f"{args.spans} distinct spans of about {statistics.mean(len(t) for t in texts['before']):,.0f} "
        f"characters (before) / {statistics.mean(len(t) for t in texts['after']):,.0f} (after); "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cpus"
    )
    vectors = {name: embedder.embed(texts[name][:8]) for name, (embedder, _) in VARIANTS.items()}  # loads
    # Texts per second of wall time, and per CPU-second of this process: on a shared machine the
    # second moves far less with the other load.
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    per_cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, (embedder, _) in VARIANTS.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            vectors[name] = embedder.embed(texts[name])
            rates[name].append(args.spans / (time.perf_counter() - started))
            per_cpu[name].append(args.spans / (time.process_time() - cpu_started))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{n} {rates[n][-1]:,.1f} texts/s ({per_cpu[n][-1]:,.1f}/CPU-s)" for n in VARIANTS)
        )
    before, before_cpu = statistics.median(rates["before"]), statistics.median(per_cpu["before"])
    print(f"median: before {before:,.1f} texts/s, {before_cpu:,.1f} per CPU-s ({VARIANTS['before'][0].id})")
    for name in VARIANTS:
        if name != "before":
            rate, cpu = statistics.median(rates[name]), statistics.median(per_cpu[name])
            print(
                f"        {name} {rate:,.1f} texts/s ({rate / before:.2f}x), "
                f"{cpu:,.1f} per CPU-s ({cpu / before_cpu:.2f}x) ({VARIANTS[name][0].id})"
            )
    for name in vectors:
        if name != "before":
            cosines = np.sum(vectors["before"] * vectors[name], axis=1)
            print(f"cosine(before, {name}) per span: mean {cosines.mean():.3f}, min {cosines.min():.3f}")


if __name__ == "__main__":
    main()
