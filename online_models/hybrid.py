"""The hybrid recommender: bounded candidates from every model, a configurable blend of
their normalised scores, and the reason of the strongest contribution.

>>> from online_models.trending import TrendingModel
>>> hybrid = Hybrid({"trending": TrendingModel()}, {"trending": 1.0})
>>> store = MemoryStore()
>>> store.apply(hybrid.models["trending"].learn(
...     [Interaction("u", "a", "product_viewed", 1.0, 0)], {}))
>>> query = Query(None, now=0)
>>> proposals = hybrid.propose(query, store.fetch(hybrid.candidate_reads(query)))
>>> ranked = hybrid.rank(query, proposals, store.fetch(hybrid.item_reads(query, list(proposals))))
>>> [(r.item_id, r.reason, r.personalized) for r in ranked]
[('a', 'popular now', False)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from currents.settings import Settings
from online_models.base import Interaction, OnlineModel, Query, Read, Scored, State
from online_models.content import ContentModel
from online_models.cooccurrence import CooccurrenceModel
from online_models.matrix_factorization import MatrixFactorizationModel
from online_models.memory import MemoryStore
from online_models.session import SessionModel
from online_models.trending import TrendingModel

__all__ = ["DEFAULT_BLEND", "Hybrid", "Interaction", "MemoryStore", "Ranked", "build_models"]

# The blend the API serves unless told otherwise (CURRENTS_BLEND's default).
DEFAULT_BLEND: dict[str, float] = Settings.model_fields["blend"].get_default(
    call_default_factory=True
)
CANDIDATES_PER_MODEL = 100
# Models whose contribution means "we know something about this shopper".
NON_PERSONAL = frozenset({"trending"})
MF_REASON = "shoppers with your taste liked it"
# Models that score every pooled candidate, not only the ones they proposed.
SCORERS = frozenset({"mf", "content"})


@dataclass
class Ranked:
    item_id: str
    score: float
    reason: str
    model: str
    source: str | None = None
    personalized: bool = True
    contributions: dict[str, float] = field(default_factory=dict)


def build_models(settings: Settings) -> dict[str, OnlineModel]:
    """Every model, configured from settings (the worker, the API and the evaluator)."""
    return {
        "cooccurrence": CooccurrenceModel(
            window=settings.cooccurrence_window,
            neighbours=settings.cooccurrence_neighbours,
            half_life_h=settings.cooccurrence_half_life_h,
        ),
        "session": SessionModel(successors=settings.session_successors),
        "mf": MatrixFactorizationModel(
            factors=settings.mf_factors,
            learning_rate=settings.mf_learning_rate,
            negatives=settings.mf_negatives,
            seed=settings.mf_seed,
        ),
        "content": ContentModel(),
        "trending": TrendingModel(
            long_half_life_h=settings.popularity_half_life_h * 7,
            short_half_life_h=settings.popularity_half_life_h / 4,
        ),
    }


class Hybrid:
    def __init__(self, models: Mapping[str, OnlineModel], blend: Mapping[str, float]) -> None:
        self.models = dict(models)
        self.blend = {name: weight for name, weight in blend.items() if name in self.models}

    def with_blend(self, blend: Mapping[str, float]) -> Hybrid:
        return Hybrid(self.models, blend)

    def _active(self) -> list[tuple[str, OnlineModel, float]]:
        return [(n, self.models[n], w) for n, w in self.blend.items() if w > 0]

    # --- round trip 2: candidates ----------------------------------------------------------
    def candidate_reads(self, query: Query) -> list[Read]:
        return list(
            dict.fromkeys(r for _, m, _ in self._active() for r in m.candidate_reads(query))
        )

    def propose(self, query: Query, state: State) -> dict[str, dict[str, Scored]]:
        """item -> {model: Scored}, at most CANDIDATES_PER_MODEL items per model."""
        proposals: dict[str, dict[str, Scored]] = {}
        for name, model, _ in self._active():
            ranked = sorted(
                model.candidates(query, state).items(), key=lambda kv: (-kv[1].score, kv[0])
            )
            for item, scored in ranked[:CANDIDATES_PER_MODEL]:
                proposals.setdefault(item, {})[name] = scored
        return proposals

    # --- round trip 3: scoring ---------------------------------------------------------------
    def item_reads(self, query: Query, items: Sequence[str]) -> list[Read]:
        return list(
            dict.fromkeys(r for _, m, _ in self._active() for r in m.item_reads(query, items))
        )

    def rank(
        self,
        query: Query,
        proposals: Mapping[str, Mapping[str, Scored]],
        state: State,
        reasons: Mapping[str, str] | None = None,
        limit: int | None = None,
    ) -> list[Ranked]:
        """Blend every model's normalised scores; ``reasons`` may name a better reason for
        an item (e.g. the content model's "because you like <brand>"). Only the best
        ``limit`` items are explained and returned."""
        items = sorted(proposals)
        active = self._active()
        if not items or not active:
            return []
        matrix = np.zeros((len(items), len(active)))
        # Each proposer's own scores, gathered in one pass over the proposals.
        proposed: dict[str, dict[str, float]] = {name: {} for name, _, _ in active}
        for item, by_model in proposals.items():
            for name, offer in by_model.items():
                if name in proposed:
                    proposed[name][item] = offer.score
        for column, (name, model, _) in enumerate(active):
            own = proposed[name]
            # Proposers already scored their candidates; scorers score every candidate.
            if own and name not in SCORERS:
                values = own
            else:
                values = {**own, **model.score(query, items, state)}
            top = max(values.values(), default=0.0)
            if top <= 0:
                continue
            # normalise() in place: the positive scores over the largest (the same floats).
            raw = np.fromiter(map(values.get, items, repeat(0.0)), float, len(items))
            matrix[:, column] = np.where(raw > 0, raw / top, 0.0)
        weights = np.array([weight for _, _, weight in active])
        contributions = matrix * weights
        totals = contributions.sum(axis=1)
        order = np.argsort(-totals, kind="stable")  # ties stay in item-id order
        present: np.ndarray = np.asarray((matrix > 0).any(axis=1))
        rows = order[present[order]]
        if limit is not None:
            rows = rows[:limit]
        names = [name for name, _, _ in active]
        columns = range(len(names))
        ranked: list[Ranked] = []
        # Python lists, not numpy element access, in the per-item loop: same floats.
        for row, shares, positive, total in zip(
            rows.tolist(),
            contributions[rows].tolist(),
            (matrix[rows] > 0).tolist(),
            totals[rows].tolist(),
            strict=True,
        ):
            item = items[row]
            parts = {names[c]: shares[c] for c in columns if positive[c]}
            leader = max(parts, key=lambda name: (parts[name], name))
            scored = proposals[item].get(leader)
            if scored is not None:
                reason, source = scored.reason, scored.source
            elif leader == "mf":
                reason, source = MF_REASON, None
            else:
                reason, source = (reasons or {}).get(item, "recommended for you"), None
            ranked.append(
                Ranked(
                    item_id=item,
                    score=round(total, 9),
                    reason=reason,
                    model=leader,
                    source=source,
                    personalized=not parts.keys() <= NON_PERSONAL,
                    contributions=parts,
                )
            )
        return ranked
