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
   longest text and reached 18 GB on the full corpus, so it gets ``--fastembed-texts`` texts
   drawn evenly from the corpus (the same mix);
5. ``floor``: raw ONNX Runtime, texts sorted by token length across the whole corpus, batches
   of 32, intra-op threads = all cores; tokenised outside the timed loop.

The table shows texts/s, peak RSS and the largest absolute difference between each
candidate's vectors and ours fp32 on the texts both embedded. The last line sums it up.

Run: ``python bench/local.py`` (or ``make bench-local``), ``--quick`` for a ~2-minute smoke run.
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
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = {token: index for index, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.save(str(directory / "tokenizer.json"))
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


def make_corpus(count: int) -> list[str]:
    """40% short queries (4-14 words), 40% ~128-token and 20% ~450-token passages, shuffled.

    Every word is a whole vocabulary entry, so a text of n words is n + 2 tokens.
    """
    words = _vocabulary()[len(SPECIAL_TOKENS) + 72 :]
    rng = random.Random(_SEED)
    texts = []
    for index in range(count):
        share = index % 10
        if share < 4:
            length = rng.randint(4, 14)
        elif share < 8:
            length = rng.randint(116, 140)
        else:
            length = rng.randint(430, 470)
        texts.append(" ".join(rng.choices(words, k=length)))
    rng.shuffle(texts)
    return texts


def subset_indices(count: int, size: int) -> list[int]:
    """``size`` indices spread evenly over ``range(count)`` (the corpus is shuffled)."""
    if size >= count:
        return list(range(count))
    return sorted({int(i * count / size) for i in range(size)})


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


def child(args: argparse.Namespace) -> None:
    """Run one candidate: load, warm up, time the corpus, write vectors and figures."""
    cache = Path(args.cache_dir)
    hf, st = cache / "hf", cache / "st"
    texts = make_corpus(args.texts)
    indices = (
        subset_indices(len(texts), args.fastembed_texts)
        if args.child == "fastembed"
        else list(range(len(texts)))
    )
    chosen = [texts[i] for i in indices]
    warmup = [texts[i] for i in subset_indices(len(texts), WARMUP_TEXTS)]
    started = time.perf_counter()
    if args.child == "floor":
        prepare, run = _floor(hf)
        run(prepare(warmup), len(warmup))
        load_s = time.perf_counter() - started
        prepared = prepare(chosen)  # tokenising is outside the floor's timed loop
        started = time.perf_counter()
        vectors = run(prepared, len(chosen))
    else:
        embed = {
            "ours": lambda: _ours(hf, "fp32"),
            "ours-int8": lambda: _ours(hf, "int8"),
            "hf": lambda: _hf(st),
            "fastembed": lambda: _fastembed(hf),
        }[args.child]()
        embed(warmup)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        vectors = embed(chosen)
    elapsed = time.perf_counter() - started
    np.save(Path(args.out) / f"{args.child}.npy", vectors)
    result = {
        "name": args.child,
        "texts": len(chosen),
        "seconds": elapsed,
        "texts_per_s": len(chosen) / elapsed,
        "peak_rss_mb": _peak_rss_mb(),
        "load_s": load_s,
        "indices": indices,
    }
    (Path(args.out) / f"{args.child}.json").write_text(json.dumps(result))


# --- the parent --------------------------------------------------------------------------------

LABELS = {
    "ours": "ours fp32 (Embedder, backend=local)",
    "ours-int8": "ours int8 (local_precision=int8)",
    "hf": "HuggingFaceEmbeddings (defaults)",
    "fastembed": "fastembed TextEmbedding.embed (defaults)",
    "floor": "floor: raw ORT, global sort, batch 32",
}


def _spawn(arguments: list[str]) -> None:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="true"
    )
    subprocess.run([sys.executable, __file__, *arguments], check=True, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--texts", type=int, default=2000, help="corpus size (default: %(default)s)"
    )
    parser.add_argument(
        "--fastembed-texts",
        type=int,
        default=160,
        help="fastembed's subset, drawn evenly from the corpus (default: %(default)s)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="~2 minutes: 200 texts, 64 for fastembed"
    )
    parser.add_argument(
        "--only", default=",".join(CANDIDATES), help="comma-separated candidates to run"
    )
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="built model (reused)")
    parser.add_argument("--rebuild", action="store_true", help="build the model again")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if args.quick:
        args.texts, args.fastembed_texts = 200, 64
    cache = Path(args.cache_dir)
    if args.build:
        build_model(cache)
        return 0
    if args.child:
        child(args)
        return 0

    if args.rebuild or not (cache / "built.json").is_file():
        print(f"building the random-weight bge-base model in {cache} ...", flush=True)
        started = time.perf_counter()
        _spawn(["--build", "--cache-dir", str(cache)])
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    out = cache / "run"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = [name for name in args.only.split(",") if name]
    texts = make_corpus(args.texts)
    tokens = [len(t.split()) + 2 for t in texts]
    print(
        f"corpus: {len(texts)} texts, {sum(tokens)} tokens (mean {np.mean(tokens):.0f});"
        f" {_cores()} cores; fastembed on {min(args.fastembed_texts, len(texts))} of them",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"running {name} ...", flush=True)
        _spawn(
            [
                "--child", name,
                "--cache-dir", str(cache),
                "--out", str(out),
                "--texts", str(args.texts),
                "--fastembed-texts", str(args.fastembed_texts),
            ]
        )  # fmt: skip
        results[name] = json.loads((out / f"{name}.json").read_text())
        results[name]["vectors"] = np.load(out / f"{name}.npy")
        print(
            f"  {results[name]['texts_per_s']:.2f} texts/s,"
            f" {results[name]['peak_rss_mb']:.0f} MB peak",
            flush=True,
        )
    reference = results.get("ours")
    print()
    print("| candidate | texts | texts/s | peak RSS (MB) | max abs diff vs ours fp32 |")
    print("|---|---:|---:|---:|---:|")
    for name, result in results.items():
        diff = "-"
        if reference is not None and name != "ours":
            rows = {
                i: row for i, row in zip(reference["indices"], reference["vectors"], strict=True)
            }
            mine = result["vectors"]
            shared = [(rows[i], mine[k]) for k, i in enumerate(result["indices"]) if i in rows]
            if shared:
                a, b = (np.array(side) for side in zip(*shared, strict=True))
                diff = f"{float(np.max(np.abs(a - b))):.2e}"
        print(
            f"| {LABELS[name]} | {result['texts']} | {result['texts_per_s']:.2f} |"
            f" {result['peak_rss_mb']:.0f} | {diff} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    k: {x: y for x, y in v.items() if x not in ("vectors", "indices")}
                    for k, v in results.items()
                },
                indent=2,
            )
        )
    if all(name in results for name in CANDIDATES):
        ours = results["ours"]["texts_per_s"]

        def ratio(name: str, base: str = "ours") -> str:
            return f"{results[base]['texts_per_s'] / results[name]['texts_per_s']:.2f}x"

        memory = results["ours"]["peak_rss_mb"] / results["floor"]["peak_rss_mb"]
        print()
        print(
            f"bench-local: ours {ours:.1f} texts/s; {ratio('hf')} HuggingFaceEmbeddings,"
            f" {ratio('fastembed')} fastembed, {ratio('floor')} floor, {memory:.2f}x memory;"
            f" int8 {ratio('hf', 'ours-int8')} HuggingFaceEmbeddings"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
