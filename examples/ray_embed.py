"""Embed a JSONL corpus on a Ray cluster and write parquet vectors: ``id``, ``text``, ``embedding``.

    pip install "aimlapi-bge[ray]"
    export AIMLAPI_API_KEY=...                      # read by each actor, never sent through Ray
    python examples/ray_embed.py --input examples/corpus.jsonl --output vectors/
    python examples/ray_embed.py --address 10.0.0.5:6379 --input s3://bucket/corpus.jsonl ...

Without ``--address`` a local Ray instance starts on this machine. A rerun into the same
``--output`` embeds only the ids not written yet, so every id is written exactly once; the usage
columns of everything written are summed at the end. Against the test stand-in: ``make standin``
and ``export AIMLAPI_BASE_URL=http://127.0.0.1:8765/v1 AIMLAPI_API_KEY=standin-key``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--input", required=True, help="JSONL, one {id, text} per line")
    parser.add_argument("--output", required=True, help="directory of parquet files")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    parser.add_argument("--actors", type=int, default=2, help="embedding actors (default 2)")
    parser.add_argument(
        "--cpus-per-actor", type=float, default=0.25, help="CPUs each actor reserves (0.25)"
    )
    parser.add_argument("--max-concurrency", type=int, default=4, help="requests per actor")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per request")
    parser.add_argument("--rows-per-batch", type=int, default=512, help="rows per Ray batch")
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before Ray is imported
    import ray
    import ray.data
    from pydantic import SecretStr

    from aimlapi_bge.ray import BGEEmbedBatches, skip_written, total_usage

    started_here = not ray.is_initialized()
    if started_here:
        if args.address:
            ray.init(address=args.address, log_to_driver=False)
        else:
            ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        # Actors do not inherit this process's environment: hand them the endpoint, and the key
        # as a SecretStr (masked in every repr, and never part of a task name or log line).
        settings: dict[str, Any] = {
            "batch_size": args.batch_size,
            "max_concurrency": args.max_concurrency,
            "usage_columns": True,
        }
        if os.environ.get("AIMLAPI_BASE_URL"):
            settings["base_url"] = os.environ["AIMLAPI_BASE_URL"]
        if os.environ.get("AIMLAPI_API_KEY"):
            settings["api_key"] = SecretStr(os.environ["AIMLAPI_API_KEY"].strip())
        dataset = skip_written(ray.data.read_json(args.input), args.output)
        embedded = dataset.map_batches(
            BGEEmbedBatches,
            fn_constructor_kwargs=settings,
            compute=ray.data.ActorPoolStrategy(size=args.actors),
            num_cpus=args.cpus_per_actor,  # actors mostly wait on HTTP
            batch_size=args.rows_per_batch,
        )
        embedded.write_parquet(args.output)
        written = ray.data.read_parquet(args.output)
        usage = total_usage(written)
        print(
            f"{written.count()} vectors in {args.output}: {usage.requests} requests,"
            f" {usage.prompt_tokens} tokens, {usage.credits_used:g} credits"
        )
    finally:
        if started_here:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
