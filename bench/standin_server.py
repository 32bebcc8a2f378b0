"""Serve the stand-in AI/ML API in a process of its own, for the benchmark.

The server's CPU work (JSON bodies of megabytes) then does not compete with the clients being
measured for one interpreter's GIL. Prints the base URL on the first line of stdout, then reads
commands from stdin, one a line, until stdin closes (so it never outlives the benchmark):

* ``stats``: print one JSON line ``{"requests", "rejected", "peak_in_flight"}`` counted since
  the previous ``stats``, and start counting again.

Run by ``bench/throughput.py``; by hand::

    python bench/standin_server.py --latency 0.2 --max-batch 128 --max-in-flight 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the stand-in is test support
from support.standin import StandInServer

#: The key the benchmark's clients send (the stand-in checks it like the real service).
BENCH_KEY = "bench-key"


def main(argv: list[str] | None = None) -> None:
    """Start the server, print its URL, answer ``stats`` commands until stdin closes."""
    parser = argparse.ArgumentParser(description="The stand-in AI/ML API for the benchmark.")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--max-batch", type=int, default=None, help="items per request")
    parser.add_argument("--max-in-flight", type=int, default=None, help="beyond it: 429")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds")
    parser.add_argument("--dimension", type=int, default=768)
    parser.add_argument("--model", default="BAAI/bge-base-en-v1.5", help="the model it serves")
    parser.add_argument(
        "--shuffle", action="store_true", help="answer items in reverse order (real APIs do not)"
    )
    args = parser.parse_args(argv)
    server = StandInServer(
        latency=args.latency,
        max_batch=args.max_batch,
        max_in_flight=args.max_in_flight,
        retry_after=args.retry_after,
        dimension=args.dimension,
        models=(args.model,),
        shuffle=args.shuffle,
        api_key=BENCH_KEY,
        record=False,
    ).start()
    print(server.url, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {
                    "requests": server.request_count,
                    "rejected": server.rejected_in_flight,
                    "peak_in_flight": server.peak_in_flight,
                }
                server.reset()
                print(json.dumps(stats), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
