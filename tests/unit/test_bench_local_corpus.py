"""bench/local.py's corpus, fastembed's subset and each round's share (issue 14).

The ratios the bench prints are only as fair as what each candidate is given: fastembed's
subset must keep the corpus's mix (a subset heavy in long passages flatters a candidate that
pads every text to the longest), and the floor must run batches cut from the whole corpus
sorted by length. The bench itself needs torch and runs outside ``make test``.
"""

from __future__ import annotations

from collections import Counter
from types import ModuleType

import pytest

from support.examples import ROOT, load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(ROOT / "bench" / "local.py", "bench_local")


@pytest.fixture(scope="module")
def corpus(bench: ModuleType) -> list[str]:
    texts: list[str] = bench.make_corpus(600)
    return texts


def test_the_corpus_has_its_declared_mix(bench: ModuleType, corpus: list[str]) -> None:
    kinds = Counter(bench.kind_of(text) for text in corpus)
    assert kinds == {name: int(600 * share) for name, (share, _, _) in bench.KINDS.items()}
    assert sum(len(text.split()) + 2 for text in corpus) == 88_130  # the figure the docs cite


@pytest.mark.parametrize("size", [16, 48, 64, 96, 128])
def test_fastembeds_subset_keeps_the_mix(bench: ModuleType, corpus: list[str], size: int) -> None:
    subset = bench.subset_indices(corpus, size)
    assert len(subset) == len(set(subset)) == size and subset == sorted(subset)
    kinds = Counter(bench.kind_of(corpus[i]) for i in subset)
    for name, (share, _, _) in bench.KINDS.items():
        assert abs(kinds[name] - share * size) < 1, (name, kinds)


def test_candidates_get_consecutive_chunks(bench: ModuleType, corpus: list[str]) -> None:
    tokens = [len(text.split()) + 2 for text in corpus]
    shares = bench.round_shares("ours", tokens, 8)
    assert [i for share in shares for i in share] == list(range(600))
    assert {len(share) for share in shares} == {75}


def test_the_floor_runs_batches_of_the_whole_sorted_corpus(
    bench: ModuleType, corpus: list[str]
) -> None:
    tokens = [len(text.split()) + 2 for text in corpus]
    shares = bench.round_shares("floor", tokens, 8)
    assert sorted(i for share in shares for i in share) == list(range(600))
    globally_sorted = sorted(tokens)
    batch = bench.FLOOR_BATCH
    batches = [globally_sorted[i : i + batch] for i in range(0, 600, batch)]
    for round_, share in enumerate(shares):
        # The floor's child sorts its share and cuts it by FLOOR_BATCH: the global batches.
        lengths = sorted(tokens[i] for i in share)
        cut = [lengths[i : i + batch] for i in range(0, len(lengths), batch)]
        assert cut == batches[round_ :: 8]
    assert all(len(share) > 0 for share in shares)
