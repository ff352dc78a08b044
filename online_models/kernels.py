"""The ranking core's loops, compiled (numba).

Ranking one shopper sums a few thousand (item, contribution) entries into a few hundred
candidates, cuts them, blends five columns and sorts a hundred rows. As numpy calls that
is some sixty small operations, each paying the interpreter's fixed cost; as loops over
the entries it is a few microseconds. Each kernel here is one such loop over plain arrays,
with no knowledge of models, keys or callers: ``online_models/ranking.py`` and the models'
``propose`` feed them.

Ties are broken by an item's rank in the catalog's id order (``Vocabulary.ranks``), so a
cut never depends on array order.

Compiling takes a few seconds; :func:`warm_up` does it (or loads it from numba's cache)
when a process starts, so no request pays it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["Scratch", "aggregate", "best_group", "blend", "pool", "top", "warm_up"]

_jit = njit(cache=True, nogil=True)


class Scratch:
    """Work arrays indexed by item code, kept from one ranking to the next so that no
    kernel allocates or clears an array the size of the catalog: outside a kernel call
    ``floats`` hold 0.0 and ``ints`` -1, and each kernel restores the entries it touched.
    Sized to the catalog's capacity by ``online_models.arrays.Catalog``."""

    def __init__(self) -> None:
        self.floats = (np.zeros(0), np.zeros(0))
        self.ints = np.zeros(0, np.int64)

    def fit(self, size: int) -> None:
        if len(self.ints) < size:
            self.floats = (np.zeros(size), np.zeros(size))
            self.ints = np.full(size, -1, np.int64)


@_jit
def aggregate(
    codes: np.ndarray,
    values: np.ndarray,
    lengths: np.ndarray,
    weights: np.ndarray,
    use_max: bool,
    total: np.ndarray,
    largest: np.ndarray,
    label: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lists of non-negative entries, list ``j`` the next ``lengths[j]`` of them, each
    value times its list's weight, summed (``use_max``: maximised) per code. Returns the
    codes with a positive result in order of first sight, their results, and each one's
    label: the list of its largest contribution (the first one on ties). ``total``,
    ``largest`` and ``label`` are :class:`Scratch` arrays."""
    i = 0
    for j in range(len(lengths)):
        weight = weights[j]
        for _ in range(lengths[j]):
            code, value = codes[i], values[i] * weight
            if use_max:
                if value > total[code]:
                    total[code] = value
            else:
                total[code] += value
            if value > largest[code]:
                largest[code] = value
                label[code] = j
            i += 1
    present = np.empty(len(codes), np.int64)
    results = np.empty(len(codes))
    labels = np.empty(len(codes), np.int64)
    found = 0
    for code in codes:
        if label[code] >= 0:
            present[found], results[found], labels[found] = code, total[code], label[code]
            found += 1
            label[code] = -1
        total[code] = 0.0
        largest[code] = 0.0
    return present[:found], results[:found], labels[:found]


@_jit
def best_group(
    codes: np.ndarray,
    values: np.ndarray,
    lengths: np.ndarray,
    weights: np.ndarray,
    groups: np.ndarray,
    total: np.ndarray,
    best: np.ndarray,
    leader: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lists of non-negative entries as for :func:`aggregate`, list ``j`` in group
    ``groups[j]`` (a group's lists next to each other, groups in ascending order):
    values times their list's weight, summed per (group, code). Returns the codes whose
    best group's sum is positive in order of first sight, that sum, and the first group
    reaching it. ``total``, ``best`` and ``leader`` are :class:`Scratch` arrays."""
    i = 0
    group_start = 0
    for j in range(len(lengths)):
        weight = weights[j]
        for _ in range(lengths[j]):
            total[codes[i]] += values[i] * weight
            i += 1
        if j + 1 == len(lengths) or groups[j + 1] != groups[j]:
            # The group is summed: compare it with the groups before, then clear it.
            for entry in range(group_start, i):
                code = codes[entry]
                if total[code] > best[code]:
                    best[code] = total[code]
                    leader[code] = groups[j]
                total[code] = 0.0
            group_start = i
    present = np.empty(len(codes), np.int64)
    results = np.empty(len(codes))
    leaders = np.empty(len(codes), np.int64)
    found = 0
    for code in codes:
        if leader[code] >= 0:
            present[found], results[found], leaders[found] = code, best[code], leader[code]
            found += 1
            leader[code] = -1
        best[code] = 0.0
    return present[:found], results[:found], leaders[:found]


@_jit
def top(codes: np.ndarray, scores: np.ndarray, k: int, ranks: np.ndarray) -> np.ndarray:
    """Positions of the ``k`` highest scores, ties at the cut to the smaller item id
    (``ranks``: each code's place in id order), in no particular order."""
    n = len(scores)
    if n <= k:
        return np.arange(n)
    kth = np.partition(scores, n - k)[n - k]
    chosen = np.empty(k, np.int64)
    found = 0
    ties = np.empty(n, np.int64)
    n_ties = 0
    for i in range(n):
        if scores[i] > kth:
            chosen[found] = i
            found += 1
        elif scores[i] == kth:
            ties[n_ties] = i
            n_ties += 1
    need = k - found
    if n_ties > need:
        tie_ranks = np.empty(n_ties, np.int64)
        for j in range(n_ties):
            tie_ranks[j] = ranks[codes[ties[j]]]
        ties = ties[:n_ties][np.argsort(tie_ranks)]
    chosen[found:] = ties[:need]
    return chosen


@_jit
def pool(
    codes: np.ndarray,
    scores: np.ndarray,
    starts: np.ndarray,
    excluded: np.ndarray,
    per_model: int,
    pool_size: int,
    ranks: np.ndarray,
    best: np.ndarray,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Models' proposals, model ``m``'s at ``starts[m]:starts[m + 1]``: each model's best
    ``per_model``, and their union without the ``excluded`` codes, cut to the
    ``pool_size`` best by their highest proposal. Returns whether each entry was kept and
    the pooled codes in ascending order. ``best`` and ``state`` are :class:`Scratch`
    arrays."""
    kept = np.zeros(len(codes), np.bool_)
    candidates = np.empty(len(codes), np.int64)
    found = 0
    for m in range(len(starts) - 1):
        start, end = starts[m], starts[m + 1]
        for position in top(codes[start:end], scores[start:end], per_model, ranks):
            i = start + position
            code = codes[i]
            kept[i] = True
            if state[code] < 0:
                state[code] = 1
                candidates[found] = code
                found += 1
            if scores[i] > best[code]:
                best[code] = scores[i]
    for code in excluded:
        if 0 <= code < len(state) and state[code] == 1:
            state[code] = 0
    candidates = candidates[:found]
    allowed = np.empty(found, np.int64)
    highest = np.empty(found)
    n_allowed = 0
    for code in candidates:
        if state[code] == 1:
            allowed[n_allowed], highest[n_allowed] = code, best[code]
            n_allowed += 1
        state[code] = -1
        best[code] = 0.0
    allowed, highest = allowed[:n_allowed], highest[:n_allowed]
    return kept, np.sort(allowed[top(allowed, highest, pool_size, ranks)])


@_jit
def blend(
    pooled: np.ndarray,
    codes: np.ndarray,
    scores: np.ndarray,
    columns: np.ndarray,
    labels: np.ndarray,
    kept: np.ndarray,
    scored: np.ndarray,
    weights: np.ndarray,
    by_name: np.ndarray,
    personal_columns: np.ndarray,
    limit: int,
    ranks: np.ndarray,
    slot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The pool blended: each column (a model) holds its proposals' scores (the
    ``kept`` entries ``codes``/``scores``/``labels`` in column ``columns``), overridden
    where ``scored`` (the scorers' scores over the pool) is positive, divided by its
    maximum and weighted.
    Keeps the ``limit`` best rows with a positive column (all when ``limit`` < 0), by
    descending total and then item id. Per kept row: its pool position, total, leader
    (the column of the largest contribution, the first in ``by_name`` order on ties),
    the leader's label if the leader proposed it (else -1), and whether a personal
    column contributed. Last, how many rows had a positive column. ``slot`` is a
    :class:`Scratch` array."""
    n_rows, n_columns = scored.shape
    for row in range(n_rows):
        slot[pooled[row]] = row
    matrix = scored.copy()
    label_of = np.full((n_rows, n_columns), -1, np.int64)
    for i in range(len(codes)):
        row = slot[codes[i]] if kept[i] else -1
        if row >= 0:
            column = columns[i]
            label_of[row, column] = labels[i]
            if not matrix[row, column] > 0:
                matrix[row, column] = scores[i]
    for row in range(n_rows):
        slot[pooled[row]] = -1
    for column in range(n_columns):
        highest = 0.0
        for row in range(n_rows):
            highest = max(highest, matrix[row, column])
        for row in range(n_rows):
            matrix[row, column] = matrix[row, column] / highest if highest > 0 else 0.0
    totals = np.zeros(n_rows)
    present = np.zeros(n_rows, np.int64)
    n_present = 0
    for row in range(n_rows):
        total = 0.0
        positive = False
        for column in range(n_columns):
            total += matrix[row, column] * weights[column]
            positive = positive or matrix[row, column] > 0
        totals[row] = total
        if positive:
            present[n_present] = row
            n_present += 1
    present = present[:n_present]
    chosen = present
    if 0 <= limit < n_present:
        chosen = present[top(pooled[present], totals[present], limit, ranks)]
    # Descending total, then item id: a stable sort by total of rows in id order.
    id_order = chosen[np.argsort(ranks[pooled[chosen]])]
    rows = id_order[np.argsort(-totals[id_order], kind="mergesort")]
    leaders = np.empty(len(rows), np.int64)
    row_labels = np.empty(len(rows), np.int64)
    personal = np.zeros(len(rows), np.bool_)
    for i in range(len(rows)):
        row = rows[i]
        leader, share = -1, -1.0
        for column in by_name:
            value = matrix[row, column]
            if value > 0:
                personal[i] = personal[i] or personal_columns[column]
                if value * weights[column] > share:
                    leader, share = column, value * weights[column]
        leaders[i] = leader
        row_labels[i] = label_of[row, leader]
    return rows, totals[rows], leaders, row_labels, personal, n_present


def warm_up() -> None:
    """Compile every kernel (or load it from numba's cache) for the types the ranking
    pipeline passes, before a process serves its first ranking."""
    scratch = Scratch()
    scratch.fit(2)
    (total, other), ints = scratch.floats, scratch.ints
    codes = np.array([1, 0, 1], np.int64)
    values = np.array([1.0, 2.0, 0.5])
    lengths, weights = np.array([2, 1], np.int64), np.array([1.0, 0.5])
    labels = np.array([0, 1, 1], np.int64)
    ranks = np.arange(2, dtype=np.int64)
    aggregate(codes, values, lengths, weights, False, total, other, ints)
    best_group(codes, values, lengths, weights, labels[:2], total, other, ints)
    top(codes, values, 1, ranks)
    starts = np.array([0, 2, 3], np.int64)
    _, pooled = pool(codes, values, starts, np.zeros(0, np.int64), 1, 2, ranks, total, ints)
    blend(
        pooled,
        codes,
        values,
        np.array([0, 0, 1], np.int64),
        labels,
        np.ones(3, np.bool_),
        np.zeros((len(pooled), 2)),
        weights,
        np.array([1, 0], np.int64),
        np.array([True, False]),
        1,
        ranks,
        ints,
    )
