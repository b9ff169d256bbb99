"""Distinct, realistic span text for the embedding benchmarks: support-agent chat."""

from __future__ import annotations

import random
from typing import Any

SUBJECTS = ["order", "refund", "invoice", "parcel", "subscription", "account", "booking", "ticket"]
VERBS = ["was delayed", "arrived damaged", "was charged twice", "cannot be found", "needs a new address"]
FILLER = [
    "The customer wrote again this morning and sounded frustrated.",
    "According to the carrier the package left the warehouse on Monday.",
    "Our policy allows a full refund within thirty days of delivery.",
    "I checked the payment logs and found two identical captures.",
    "The tracking page has not been updated for four days.",
    "Please confirm the postcode before I change the delivery address.",
    "A replacement can ship today if the item is still in stock.",
    "The previous agent promised a callback that never happened.",
    "Escalate to the billing team when the amount exceeds two hundred euros.",
    "The warehouse reports the shelf location as empty since last week.",
]


def prose(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        ref = rng.randint(1000, 99999)
        words += f"{rng.choice(FILLER)} The {rng.choice(SUBJECTS)} {ref} {rng.choice(VERBS)}.".split()
    return " ".join(words)[:chars]


def chat_span(rng: random.Random, n: int, *, chars: int = 1000) -> dict[str, Any]:
    """An LLM call whose input and output together read about `chars` characters."""
    return {
        "name": "chat",
        "span_type": "llm_call",
        "model": "gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": f"#{n} " + prose(rng, chars // 2 - 20)}]},
        "output": prose(rng, chars // 2 - 20),
    }
