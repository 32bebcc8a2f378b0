"""How the local backend cuts a whole call, sorted by token count, into ONNX runs (issue 14).

The cost of a run is its padded tokens (texts x the longest text) plus a fixed overhead, so
a run ends at the token budget, at the text limit, or where one more text would pad the
shorter ones by more than :data:`~aimlapi_bge.local.PADDING_PER_RUN` tokens in all. The
vectors these runs give are checked against one-text-at-a-time runs in
``tests/integration/test_local_speed.py``.
"""

from __future__ import annotations

import itertools
import random

import pytest

import aimlapi_bge.local as local_module
from aimlapi_bge.local import BATCH_TOKENS, MAX_BATCH_TEXTS, PADDING_PER_RUN, _batches


def runs_for(lengths: list[int]) -> list[list[int]]:
    """The runs as lists of token counts, for texts of these lengths."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [[lengths[position] for position in run] for run in _batches(order, lengths)]


def padding(run: list[int]) -> int:
    return len(run) * max(run) - sum(run)


def breaks_a_limit(run: list[int], added: int) -> bool:
    """Whether ``added`` (at least as long as every text of ``run``) must start a new run."""
    grown = [*run, added]
    return (
        len(grown) * added > BATCH_TOKENS
        or len(grown) > MAX_BATCH_TEXTS
        or padding(grown) > PADDING_PER_RUN
    )


def test_short_queries_are_not_padded_to_a_passage() -> None:
    runs = runs_for([12] * 6 + [130] * 3 + [9] * 6)  # 15 x 130 would fit the budget
    assert runs == [[9] * 6 + [12] * 6, [130] * 3]  # 18 tokens of padding, not 6 x 121 + 6 x 118


def test_a_length_jump_ends_the_run() -> None:
    runs = runs_for([100] * 5 + [140] * 5)
    assert runs == [[100] * 5, [140] * 5]  # 5 x 40 tokens of padding would cost more than a run


def test_equal_lengths_fill_the_budget() -> None:
    per_run = BATCH_TOKENS // 128
    runs = runs_for([128] * (2 * per_run + 3))
    assert [len(run) for run in runs] == [per_run, per_run, 3]


def test_very_short_texts_stop_at_the_text_limit() -> None:
    runs = runs_for([3] * (MAX_BATCH_TEXTS + 5))
    assert [len(run) for run in runs] == [MAX_BATCH_TEXTS, 5]


def test_a_text_over_the_budget_runs_alone() -> None:
    big = BATCH_TOKENS + 1  # only with a budget below the model's context, but it must hold
    assert runs_for([big, 5, big]) == [[5], [big], [big]]


@pytest.mark.parametrize("seed", range(20))
def test_every_run_keeps_the_limits_and_every_cut_is_needed(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [
        rng.choice([rng.randint(3, 20), rng.randint(100, 160), rng.randint(400, 512)])
        for _ in range(rng.randint(1, 400))
    ]
    runs = runs_for(lengths)
    flat = [length for run in runs for length in run]
    assert flat == sorted(lengths)  # every text once, in token order
    for run in runs:
        assert len(run) == 1 or len(run) * max(run) <= BATCH_TOKENS
        assert len(run) <= MAX_BATCH_TEXTS and padding(run) <= PADDING_PER_RUN
    for run, following in itertools.pairwise(runs):
        assert breaks_a_limit(run, following[0])  # no run ends before it has to


def test_the_limits_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "PADDING_PER_RUN", 0)
    assert runs_for([5, 5, 6, 6]) == [[5, 5], [6, 6]]
    monkeypatch.setattr(local_module, "PADDING_PER_RUN", 10**9)
    monkeypatch.setattr(local_module, "BATCH_TOKENS", 12)
    assert runs_for([5, 5, 6, 6]) == [[5, 5], [6, 6]]
    monkeypatch.setattr(local_module, "BATCH_TOKENS", 24)
    assert runs_for([5, 5, 6, 6]) == [[5, 5, 6, 6]]
