"""Token prices of common models, in US dollars per million tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import orjson


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None


# Public list prices (standard tier). RETRACE_MODEL_PRICES overrides or extends them.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50),
    "claude-opus-4": Price(15.00, 75.00, 1.50),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "claude-3-opus": Price(15.00, 75.00, 1.50),
    "claude-3-haiku": Price(0.25, 1.25, 0.03),
}

# Dated snapshots and aliases share their family's price: gpt-4o-2024-08-06, claude-3-5-haiku-20241022.
_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")


class PriceTable:
    def __init__(self, overrides: str | None = None) -> None:
        self._prices = {**DEFAULT_PRICES, **parse_overrides(overrides)}
        # Every span asks; runs use a handful of model names.
        self._by_name: dict[str, Price | None] = {}

    def price(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self._by_name:
            return self._by_name[model]
        name = model.split("/")[-1].strip().lower()
        price = self._prices.get(name) or self._prices.get(_SUFFIX.sub("", name))
        if len(self._by_name) < 10_000:
            self._by_name[model] = price
        return price

    def cost(
        self,
        model: str | None,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int = 0,
    ) -> float | None:
        """The cost of one call, or None for an unknown model (no cost rather than a wrong one)."""
        price = self.price(model)
        if price is None or (input_tokens is None and output_tokens is None):
            return None
        cached = min(cached_input_tokens, input_tokens or 0)
        cached_price = price.cached_input if price.cached_input is not None else price.input
        total = ((input_tokens or 0) - cached) * price.input + cached * cached_price
        total += (output_tokens or 0) * price.output
        return round(total / 1_000_000, 10)


def parse_overrides(raw: str | None) -> dict[str, Price]:
    if not raw:
        return {}
    try:
        data = orjson.loads(raw)
        return {
            str(model).lower(): Price(
                float(p["input"]),
                float(p["output"]),
                float(p["cached_input"]) if p.get("cached_input") is not None else None,
            )
            for model, p in data.items()
        }
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            "RETRACE_MODEL_PRICES must be JSON like "
            '{"model": {"input": 1.0, "output": 2.0, "cached_input": 0.5}} (dollars per million tokens)'
        ) from exc


@lru_cache(maxsize=8)
def price_table(overrides: str | None) -> PriceTable:
    return PriceTable(overrides)
