"""The in-process model side by side: aimlapi-bge's local backend against what users run today.

Offline, on a model with exactly BAAI/bge-base-en-v1.5's architecture (BERT, 12 layers, hidden
768, 12 heads, FFN 3072, vocabulary 30,522, 512 positions) and random weights, built once into
``--cache-dir`` (reruns skip building):

* ``hf/``: the Hugging Face model directory (transformers ``BertModel`` from a ``BertConfig``),
  with ``onnx/model.onnx`` (``torch.onnx.export``: inputs ``input_ids``/``attention_mask``/
  ``token_type_ids``, output ``last_hidden_state``, dynamic batch and sequence axes) and a
  WordPiece tokenizer over a synthetic 30,522-entry vocabulary (``tokenizer.json``,
  ``tokenizer_config.json`` with ``model_max_length`` 512, ``special_tokens_map.json``,
  ``config.json``, ``vocab.txt``): the layout of BAAI's repository, which the local backend loads;
* ``st/``: the same weights as a sentence-transformers directory ([CLS] pooling, Normalize).

The corpus mixes short queries (40%), ~128-token passages (40%) and ~450-token passages (20%)
of synthetic words from the vocabulary. Every candidate runs in its own subprocess (model load
and a warm-up first, then the timed call; peak RSS is the child's ``ru_maxrss``):

1. ``ours``: ``Embedder(resolve_config(backend="local", local_model_path=...))``, fp32;
2. ``ours-int8``: the same with ``local_precision="int8"`` (quantised once, cached beside the
   model; the quantisation happens before the warm-up and is not timed);
3. ``hf``: langchain-huggingface ``HuggingFaceEmbeddings`` at its defaults on ``st/``;
4. ``fastembed``: ``TextEmbedding(...).embed`` at its defaults on the same ONNX file (custom
   model registration), on a subset: at its defaults it pads every 256-text batch to its
   longest text and reached 18 GB on a 2,000-text corpus, so it gets ``--fastembed-texts``
   texts with the corpus's mix (:func:`subset_indices`), and its ratio is taken against ours
   on the same texts;
5. ``floor``: raw ONNX Runtime, texts sorted by token length across the whole corpus, batches
   of 32 (each round runs every ``--rounds``-th batch, see :func:`round_shares`), intra-op
   threads = all cores; tokenised outside the timed loop.

The table shows texts/s, peak RSS and the largest absolute difference between each
candidate's vectors and ours fp32 on the texts both embedded. The last line sums it up.

Run: ``python bench/local.py`` (or ``make bench-local``), ``--quick`` for a ~4-minute smoke run.
Needs the ``bench-local`` extra (torch, transformers, sentence-transformers,
langchain-huggingface). Nothing here touches the network: ``HF_HUB_OFFLINE=1`` is set for
every child.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN = 768
VOCAB_SIZE = 30_522
MAX_LENGTH = 512
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CANDIDATES = ("ours", "ours-int8", "hf", "fastembed", "floor")
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"
FLOOR_BATCH = 32
WARMUP_TEXTS = 16
FASTEMBED_REPEATS = 2
_SEED = 14


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- the model -------------------------------------------------------------------------------


def _vocabulary() -> list[str]:
    """5 special tokens, letters and digits (and their ## forms), then synthetic words."""
    pieces = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = SPECIAL_TOKENS + pieces + ["##" + piece for piece in pieces]
    seen = set(vocab)
    rng = random.Random(_SEED)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    while len(vocab) < VOCAB_SIZE:
        word = "".join(
            rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))
        )
        if word not in seen:
            seen.add(word)
            vocab.append(word)
    return vocab


def _write_tokenizer(directory: Path, vocab: list[str]) -> None:
    # The tests' tiny model and this bench's model share one tokenizer recipe (bge's).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.tiny_model import wordpiece_tokenizer

    wordpiece_tokenizer(vocab).save(str(directory / "tokenizer.json"))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    specials = dict(zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS, strict=True))
    special_map = {f"{name}_token": token for name, token in specials.items()}
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2))
    tokenizer_config = {
        "model_max_length": MAX_LENGTH,
        "do_lower_case": True,
        "tokenizer_class": "BertTokenizer",
        **special_map,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


def build_model(cache: Path) -> None:
    """Build ``cache/hf`` (HF dir + ONNX export + tokenizer) and ``cache/st`` once."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    hf, st = cache / "hf", cache / "st"
    for directory in (hf, st):
        if directory.exists():
            shutil.rmtree(directory)
    hf.mkdir(parents=True)
    torch.manual_seed(_SEED)
    config = BertConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=2,
        pad_token_id=0,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(str(hf))
    vocab = _vocabulary()
    _write_tokenizer(hf, vocab)

    (hf / "onnx").mkdir()
    bert = BertModel.from_pretrained(str(hf), attn_implementation="eager").eval()

    class Export(torch.nn.Module):  # keyword arguments: forward's positional order varies
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state

    export = Export().eval()
    sample = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            export,
            (sample, sample, torch.zeros_like(sample)),
            str(hf / "onnx" / "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "last_hidden_state": axes,
            },
            opset_version=17,
            dynamo=False,
        )
    transformer = models.Transformer(str(hf), max_seq_length=MAX_LENGTH)
    pooling = models.Pooling(HIDDEN, pooling_mode="cls")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()]).save(str(st))
    (cache / "built.json").write_text(json.dumps({"vocab_size": len(vocab)}))


# --- the corpus ------------------------------------------------------------------------------


#: The corpus's kinds of text: (share of the corpus, fewest words, most words).
KINDS = {
    "short query": (0.4, 4, 14),
    "~128-token passage": (0.4, 116, 140),
    "~450-token passage": (0.2, 430, 470),
}


def make_corpus(count: int) -> list[str]:
    """:data:`KINDS` in their shares (40% short queries, 40% ~128-token and 20% ~450-token
    passages), shuffled.

    Every word is a whole vocabulary entry, so a text of n words is n + 2 tokens.
    """
    words = _vocabulary()[len(SPECIAL_TOKENS) + 72 :]
    rng = random.Random(_SEED)
    # Every ten texts: four short queries, four ~128-token and two ~450-token passages.
    pattern = [bounds for share, *bounds in KINDS.values() for _ in range(round(share * 10))]
    texts = []
    for index in range(count):
        fewest, most = pattern[index % 10]
        texts.append(" ".join(rng.choices(words, k=rng.randint(fewest, most))))
    rng.shuffle(texts)
    return texts


def kind_of(text: str) -> str:
    """The :data:`KINDS` entry a corpus text was made as (by its word count)."""
    words = len(text.split())
    return next(name for name, (_, lo, hi) in KINDS.items() if lo <= words <= hi)


def round_shares(name: str, tokens: list[int], rounds: int) -> list[list[int]]:
    """What each round gives a candidate: ``rounds`` lists of corpus indices, one call each.

    Every candidate but the floor gets a consecutive chunk of the (shuffled) corpus, as a
    user's call would be. The floor is the best raw ONNX Runtime can do with batches of
    :data:`FLOOR_BATCH`: the whole corpus sorted by token count, cut into batches, and every
    ``rounds``-th batch to a round (round r runs batches r, r + rounds, ...), so each round
    holds every length and no batch straddles a chunk's short and long texts.
    """
    if name != "floor":
        bounds = [round(r * len(tokens) / rounds) for r in range(rounds + 1)]
        return [list(range(bounds[r], bounds[r + 1])) for r in range(rounds)]
    order = sorted(range(len(tokens)), key=tokens.__getitem__)
    batches = [order[i : i + FLOOR_BATCH] for i in range(0, len(order), FLOOR_BATCH)]
    return [[i for batch in batches[r::rounds] for i in batch] for r in range(rounds)]


def subset_indices(texts: list[str], size: int) -> list[int]:
    """``size`` indices with the corpus's mix: each kind its share (largest remainder), spread
    evenly over that kind's texts.

    Spacing evenly over the shuffled corpus alone does not keep the mix: 64 of a 600-text
    corpus drawn that way hold 19 short queries and 17 long passages (30% and 27%,
    not 40% and 20%), which flatters a candidate that pads every text to the longest.
    """
    if size >= len(texts):
        return list(range(len(texts)))
    by_kind: dict[str, list[int]] = {name: [] for name in KINDS}
    for index, text in enumerate(texts):
        by_kind[kind_of(text)].append(index)
    quotas = {name: size * KINDS[name][0] for name in KINDS}
    counts = {name: int(quota) for name, quota in quotas.items()}
    for name in sorted(quotas, key=lambda n: counts[n] - quotas[n])[: size - sum(counts.values())]:
        counts[name] += 1
    chosen: list[int] = []
    for name, indices in by_kind.items():
        take = min(counts[name], len(indices))
        chosen += [indices[int(i * len(indices) / take)] for i in range(take)]
    return sorted(chosen)


# --- the candidates (each in a child process) ---------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _ours(hf: Path, precision: str) -> Any:
    from aimlapi_bge import Embedder, resolve_config

    embedder = Embedder(
        resolve_config(backend="local", local_model_path=str(hf), local_precision=precision)
    )
    return lambda texts: np.asarray(embedder.embed(texts), dtype=np.float32)


def _hf(st: Path) -> Any:
    from langchain_huggingface import HuggingFaceEmbeddings

    embeddings = HuggingFaceEmbeddings(model_name=str(st))
    return lambda texts: np.asarray(embeddings.embed_documents(texts), dtype=np.float32)


def _fastembed(hf: Path) -> Any:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "bench/random-bge-base-fp32"
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.CLS,
        normalization=True,
        sources=ModelSource(hf="bench/random-bge-base"),
        dim=HIDDEN,
        model_file="onnx/model.onnx",
    )
    model = TextEmbedding(model_name=name, specific_model_path=str(hf))
    return lambda texts: np.asarray(list(model.embed(texts)), dtype=np.float32)


def _floor(hf: Path) -> Any:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = _cores()
    session = ort.InferenceSession(
        str(hf / "onnx" / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    tokenizer = Tokenizer.from_file(str(hf / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_LENGTH)

    def prepare(texts: list[str]) -> list[dict[str, np.ndarray]]:
        ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        batches = []
        for start in range(0, len(order), FLOOR_BATCH):
            chunk = order[start : start + FLOOR_BATCH]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            batches.append(
                {
                    "order": np.array(chunk),
                    "input_ids": input_ids,
                    "attention_mask": mask,
                    "token_type_ids": np.zeros_like(input_ids),
                }
            )
        return batches

    def run(batches: list[dict[str, np.ndarray]], count: int) -> np.ndarray:
        out = np.empty((count, HIDDEN), dtype=np.float32)
        for batch in batches:
            feed = {k: v for k, v in batch.items() if k != "order"}
            cls = session.run(["last_hidden_state"], feed)[0][:, 0]
            out[batch["order"]] = cls / np.linalg.norm(cls, axis=1, keepdims=True)
        return out

    return prepare, run


def _make_candidate(name: str, cache: Path) -> Any:
    """``embed(texts) -> (vectors, seconds)``: the timed part only (the floor tokenises first)."""
    hf, st = cache / "hf", cache / "st"
    if name == "floor":
        prepare, run = _floor(hf)

        def floor(texts: list[str]) -> tuple[np.ndarray, float]:
            prepared = prepare(texts)  # tokenising is outside the floor's timed part
            started = time.perf_counter()
            vectors = run(prepared, len(texts))
            return vectors, time.perf_counter() - started

        return floor
    embed = {
        "ours": lambda: _ours(hf, "fp32"),
        "ours-int8": lambda: _ours(hf, "int8"),
        "hf": lambda: _hf(st),
        "fastembed": lambda: _fastembed(hf),
    }[name]()

    def timed(texts: list[str]) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        vectors = embed(texts)
        return vectors, time.perf_counter() - started

    return timed


def child(args: argparse.Namespace) -> None:
    """Serve one candidate: load and warm up, then embed what the parent asks for.

    Protocol on stdin/stdout (library output is sent to stderr): ``{"load_s": ...}`` once
    loaded; ``run I,J,..`` embeds those corpus texts, in that order, as one call and answers
    ``{"seconds": ...}``; ``subset I,J,..`` does the same for fastembed's subset; ``quit``
    writes the vectors of the ``run`` commands and the peak RSS.
    """
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    cache = Path(args.cache_dir)
    texts = make_corpus(args.texts)
    started = time.perf_counter()
    embed = _make_candidate(args.child, cache)
    embed([texts[i] for i in subset_indices(texts, WARMUP_TEXTS)])
    protocol.write(json.dumps({"load_s": time.perf_counter() - started}) + "\n")
    indices: list[int] = []
    parts: list[np.ndarray] = []
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "quit":
            break
        chosen = [int(x) for x in rest.split(",")]
        vectors, seconds = embed([texts[i] for i in chosen])
        if command == "run":
            indices += chosen
            parts.append(np.asarray(vectors, dtype=np.float32))
        else:
            np.save(Path(args.out) / f"{args.child}-subset.npy", np.asarray(vectors, np.float32))
        protocol.write(json.dumps({"seconds": seconds, "texts": len(chosen)}) + "\n")
    out = Path(args.out)
    if parts:
        np.save(out / f"{args.child}.npy", np.concatenate(parts))
    result = {"name": args.child, "peak_rss_mb": _peak_rss_mb(), "indices": indices}
    (out / f"{args.child}.json").write_text(json.dumps(result))
    protocol.write("done\n")


def prepare_int8(cache: Path) -> None:
    """Make the int8 copy ahead of the run (its one-off cost is reported, not timed)."""
    from aimlapi_bge.local import quantised_model

    started = time.perf_counter()
    path = quantised_model(cache / "hf" / "onnx" / "model.onnx", str(cache))
    print(
        f"int8 copy: {path.name}, made or found in {time.perf_counter() - started:.0f} s"
        f" (peak RSS {_peak_rss_mb():.0f} MB)",
        flush=True,
    )


# --- the parent --------------------------------------------------------------------------------

LABELS = {
    "ours": "ours fp32 (Embedder, backend=local)",
    "ours-int8": "ours int8 (local_precision=int8)",
    "hf": "HuggingFaceEmbeddings (defaults)",
    "fastembed": "fastembed TextEmbedding.embed (defaults), subset",
    "floor": "floor: raw ORT, global sort, batch 32",
}
_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class Child:
    """One candidate's process."""

    def __init__(self, name: str, args: argparse.Namespace, out: Path) -> None:
        self.name = name
        command = [
            sys.executable, __file__, "--child", name, "--cache-dir", args.cache_dir,
            "--out", str(out), "--texts", str(args.texts),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **_ENV),
        )
        self.load_s = float(self._answer()["load_s"])
        self.seconds = 0.0
        self.texts = 0

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        return float(answer["seconds"])

    def run(self, indices: list[int]) -> None:
        self.seconds += self.ask("run " + ",".join(map(str, indices)))
        self.texts += len(indices)

    def finish(self, out: Path) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.stdout.readline()
        self.process.wait()
        result: dict[str, Any] = json.loads((out / f"{self.name}.json").read_text())
        if (out / f"{self.name}.npy").is_file():
            result["vectors"] = np.load(out / f"{self.name}.npy")
        result.update(load_s=self.load_s, seconds=self.seconds, texts=self.texts)
        result["texts_per_s"] = self.texts / self.seconds if self.seconds else float("nan")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--texts",
        type=int,
        default=1000,
        help="corpus size; 1000 take about 15 minutes on 2 cores (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="the corpus is cut into this many chunks; each round every candidate embeds one"
        " chunk (the floor: every ROUNDS-th of its batches), in rotating order, so load from"
        " other processes hits all alike"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--fastembed-texts",
        type=int,
        default=64,
        help="fastembed's subset, with the corpus's mix of kinds (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="~4 minutes: 200 texts in 2 rounds, 48 for fastembed"
    )
    parser.add_argument(
        "--only", default=",".join(CANDIDATES), help="comma-separated candidates to run"
    )
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="built model (reused)")
    parser.add_argument("--rebuild", action="store_true", help="build the model again")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-int8", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.update(_ENV)
    if args.quick:
        args.texts, args.rounds, args.fastembed_texts = 200, 2, 48
    cache = Path(args.cache_dir)
    if args.build:
        build_model(cache)
        return 0
    if args.prepare_int8:
        prepare_int8(cache)
        return 0
    if args.child:
        child(args)
        return 0

    started_all = time.perf_counter()
    if args.rebuild or not (cache / "built.json").is_file():
        print(f"building the random-weight bge-base model in {cache} ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--build", "--cache-dir", str(cache)],
            check=True,
            env=dict(os.environ, **_ENV),
        )
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    names = [name for name in args.only.split(",") if name]
    if "ours-int8" in names:
        subprocess.run(
            [sys.executable, __file__, "--prepare-int8", "--cache-dir", str(cache)],
            check=True,
            env=dict(os.environ, **_ENV),
        )
    out = cache / "run"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    texts = make_corpus(args.texts)
    tokens = [len(t.split()) + 2 for t in texts]
    subset = subset_indices(texts, args.fastembed_texts)
    print(
        f"corpus: {len(texts)} texts, {sum(tokens)} tokens (mean {np.mean(tokens):.0f}) in"
        f" {args.rounds} rounds; {_cores()} cores; load average"
        f" {os.getloadavg()[0]:.1f}; fastembed on {len(subset)} of them",
        flush=True,
    )

    interleaved = [name for name in names if name != "fastembed"]
    children = {}
    for name in interleaved:  # one at a time: loads do not overlap
        children[name] = Child(name, args, out)
        print(f"  {name} loaded in {children[name].load_s:.1f} s", flush=True)
    shares = {name: round_shares(name, tokens, args.rounds) for name in interleaved}
    for round_ in range(args.rounds):
        order = interleaved[round_ % len(interleaved) :] + interleaved[: round_ % len(interleaved)]
        for name in order:
            children[name].run(shares[name][round_])
        print(
            f"  round {round_ + 1}/{args.rounds}: "
            + ", ".join(
                f"{name} {children[name].texts / children[name].seconds:.2f}"
                for name in interleaved
            )
            + f" texts/s so far (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    ours_subset: list[float] = []
    for name in interleaved:
        if name != "ours" or "fastembed" not in names:
            results[name] = children.pop(name).finish(out)
    if "fastembed" in names:
        # fastembed's subset alternating with ours on the same texts (ours, fastembed, ours,
        # fastembed, ours), so that load from other processes falls on both alike.
        subset_command = "subset " + ",".join(map(str, subset))
        ours = children.get("ours")
        if ours is not None:
            ours_subset.append(len(subset) / ours.ask(subset_command))
        fastembed = Child("fastembed", args, out)
        for _ in range(FASTEMBED_REPEATS):
            fastembed.seconds += fastembed.ask(subset_command)
            fastembed.texts += len(subset)
            if ours is not None:
                ours_subset.append(len(subset) / ours.ask(subset_command))
        if ours is not None:
            results["ours"] = children.pop("ours").finish(out)
        results["fastembed"] = fastembed.finish(out)
        results["fastembed"]["indices"] = subset
        results["fastembed"]["vectors"] = np.load(out / "fastembed-subset.npy")
    print(f"all done in {(time.perf_counter() - started_all) / 60:.1f} min", flush=True)
    report(results, ours_subset, subset, texts, args)
    return 0


def report(
    results: dict[str, dict[str, Any]],
    ours_subset: list[float],
    subset: list[int],
    texts: list[str],
    args: argparse.Namespace,
) -> None:
    reference = results.get("ours")
    print()
    print("| candidate | texts | texts/s | peak RSS (MB) | max abs diff vs ours fp32 |")
    print("|---|---:|---:|---:|---:|")
    order = [name for name in CANDIDATES if name in results]
    for name in order:
        result = results[name]
        diff = "-"
        if reference is not None and name != "ours" and "vectors" in result:
            rows = dict(zip(reference["indices"], reference["vectors"], strict=True))
            mine = result["vectors"]
            shared = [(rows[i], mine[k]) for k, i in enumerate(result["indices"]) if i in rows]
            if shared:
                a, b = (np.array(side) for side in zip(*shared, strict=True))
                diff = f"{float(np.max(np.abs(a - b))):.2e}"
        print(
            f"| {LABELS[name]} | {result['texts']} | {result['texts_per_s']:.2f} |"
            f" {result['peak_rss_mb']:.0f} | {diff} |"
        )
    if ours_subset:
        print(
            f"\nours fp32 on fastembed's {len(subset)} texts, before, between and after its"
            f" {FASTEMBED_REPEATS} calls: "
            + ", ".join(f"{x:.2f}" for x in ours_subset)
            + " texts/s (the fastembed ratio uses their mean)"
        )
    if args.json:
        summary = {
            name: {k: v for k, v in result.items() if k not in ("vectors", "indices")}
            for name, result in results.items()
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if all(name in results for name in CANDIDATES) and ours_subset:
        ours = results["ours"]["texts_per_s"]

        def ratio(name: str, base: float = ours) -> str:
            return f"{base / results[name]['texts_per_s']:.2f}x"

        memory = results["ours"]["peak_rss_mb"] / results["floor"]["peak_rss_mb"]
        int8 = results["ours-int8"]["texts_per_s"]
        fastembed = f"{float(np.mean(ours_subset)) / results['fastembed']['texts_per_s']:.2f}x"
        print()
        print(
            f"bench-local: ours {ours:.1f} texts/s; {ratio('hf')} HuggingFaceEmbeddings,"
            f" {fastembed} fastembed, {ratio('floor')} floor, {memory:.2f}x memory;"
            f" int8 {ratio('hf', int8)} HuggingFaceEmbeddings"
        )


if __name__ == "__main__":
    sys.exit(main())
