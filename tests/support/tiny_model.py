"""A tiny BERT-like model directory, built in the tests: no download anywhere.

It has the files and shapes of BAAI/bge-base-en-v1.5's Hugging Face repository, so the local
backend loads it exactly as it loads the real model:

* ``onnx/model.onnx``: inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64,
  ``[batch, seq]``), output ``last_hidden_state`` (float32, ``[batch, seq, HIDDEN]``). Every
  row is ``tanh(word[id] + type[type_id] + masked_mean(word[ids]) @ mix)``, so the [CLS] row
  depends on every real token of the text and on none of the padding;
* ``tokenizer.json``: an uncased WordPiece tokenizer (BertNormalizer, BertPreTokenizer,
  ``[CLS] $A [SEP]``) whose vocabulary has some whole words plus every letter and digit as a
  word start and as a ``##`` continuation, so any ASCII text tokenises without ``[UNK]``;
* ``tokenizer_config.json`` (``model_max_length`` = :data:`MAX_LENGTH` decides truncation),
  ``special_tokens_map.json`` and ``config.json``.

:func:`reference_vectors` recomputes the expected vectors with numpy from the tokenizer's ids,
one text at a time (no padding), for comparison with what the backend returns.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

__all__ = [
    "HIDDEN",
    "MAX_LENGTH",
    "MODEL_FILE",
    "WORDS",
    "build_tiny_model",
    "install_in_hf_cache",
    "reference_vectors",
    "token_ids",
    "wordpiece_tokenizer",
]

HIDDEN = 16
MAX_LENGTH = 32
MODEL_FILE = "onnx/model.onnx"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "laura",
    "is",
    "a",
    "dj",
    ".",
    ",",
    "?",
    "!",
    ":",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "paris",
    "in",
    "france",
    "what",
    "who",
    "where",
    "how",
    "represent",
    "this",
    "sentence",
    "for",
    "searching",
    "relevant",
    "passages",
    "music",
    "plays",
    "records",
    "night",
    "club",
    "city",
    "capital",
    "of",
    "river",
    "seine",
    "dog",
    "runs",
    "park",
]
_SEED = 20260330


def _vocabulary() -> list[str]:
    pieces = list(string.ascii_lowercase + string.digits)
    vocab = SPECIAL_TOKENS + [word for word in dict.fromkeys(WORDS) if word not in pieces]
    return vocab + pieces + ["##" + piece for piece in pieces]


def _weights(vocab_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    return {
        "word": rng.standard_normal((vocab_size, HIDDEN)).astype(np.float32),
        "type": (0.1 * rng.standard_normal((2, HIDDEN))).astype(np.float32),
        "mix": rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32),
    }


def _graph(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    ints = TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info(name, ints, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]
    )
    initializers = [numpy_helper.from_array(array, name) for name, array in weights.items()]
    initializers.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_seq"))
    initializers.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis_hidden"))
    nodes = [
        helper.make_node("Gather", ["word", "input_ids"], ["words"]),
        helper.make_node("Gather", ["type", "token_type_ids"], ["types"]),
        helper.make_node("Cast", ["attention_mask"], ["mask2d"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask2d", "axis_hidden"], ["mask"]),
        helper.make_node("Mul", ["words", "mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis_seq"], ["total"], keepdims=1),
        helper.make_node("ReduceSum", ["mask", "axis_seq"], ["count"], keepdims=1),
        helper.make_node("Div", ["total", "count"], ["mean"]),
        helper.make_node("MatMul", ["mean", "mix"], ["context"]),
        helper.make_node("Add", ["words", "types"], ["tokens"]),
        helper.make_node("Add", ["tokens", "context"], ["mixed"]),
        helper.make_node("Tanh", ["mixed"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(nodes, "tiny_bert", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def wordpiece_tokenizer(vocab: list[str]) -> Tokenizer:
    """A BERT-uncased WordPiece tokenizer over ``vocab`` (special tokens first), as bge's."""
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
    return tokenizer


def build_tiny_model(directory: Path) -> Path:
    """Write the tiny model's files into ``directory`` and return it."""
    vocab = _vocabulary()
    (directory / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(_weights(len(vocab))), str(directory / MODEL_FILE))
    wordpiece_tokenizer(vocab).save(str(directory / "tokenizer.json"))
    specials = dict(zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS, strict=True))
    special_map = {f"{name}_token": token for name, token in specials.items()}
    files = {
        "tokenizer_config.json": {
            "model_max_length": MAX_LENGTH,
            "do_lower_case": True,
            "tokenizer_class": "BertTokenizer",
            **special_map,
        },
        "special_tokens_map.json": special_map,
        "config.json": {
            "model_type": "bert",
            "hidden_size": HIDDEN,
            "vocab_size": len(vocab),
            "pad_token_id": 0,
            "max_position_embeddings": MAX_LENGTH,
        },
    }
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=2))
    return directory


def token_ids(directory: Path, text: str) -> list[int]:
    """The ids the model directory's tokenizer gives ``text``, truncated to :data:`MAX_LENGTH`."""
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_LENGTH)
    return list(tokenizer.encode(text).ids)


def reference_vectors(directory: Path, texts: list[str]) -> np.ndarray:
    """The tiny model's [CLS]-pooled, L2-normalised vectors, recomputed with numpy."""
    weights = _weights(len(_vocabulary()))
    rows = []
    for text in texts:
        ids = np.array(token_ids(directory, text))
        words = weights["word"][ids]
        context = words.mean(axis=0) @ weights["mix"]
        cls = np.tanh(words[0] + weights["type"][0] + context)
        rows.append(cls / np.linalg.norm(cls))
    return np.array(rows)


def install_in_hf_cache(model_dir: Path, cache_dir: Path, repo: str) -> Path:
    """Copy the model files into ``cache_dir`` as Hugging Face's cache stores a download of ``repo``.

    Returns the snapshot directory. This is the layout a first online run leaves behind, so a
    backend pointed at ``cache_dir`` must then work with no network.
    """
    revision = "0123456789abcdef0123456789abcdef01234567"
    root = cache_dir / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / revision
    shutil.copytree(model_dir, snapshot)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    return snapshot
