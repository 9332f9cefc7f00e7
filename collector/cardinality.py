"""Label values capped per label, so an app that sends endless distinct values (a model name with a
request id in it, say) cannot grow the collector's memory or its /metrics without bound."""

from __future__ import annotations

OVERFLOW = "__other__"
MODEL_LABELS = 1000  # distinct model names counted apart in metrics; later ones count under __other__


class CardinalityLimit:
    """The first ``limit`` distinct values pass as they are; any later new value becomes ``__other__``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OVERFLOW
        self.seen.add(value)
        return value
