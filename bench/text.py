"""Distinct, realistic chat text for the benchmarks, cheap enough to make while the load runs.

A pool of sentences is written once from templates with slots (names, orders, products, sums,
dates); each message joins a few sentences drawn at random, so no two messages repeat (search and
embedding caches get no free hits) while making one costs a few microseconds.
"""

from __future__ import annotations

import random

_NAMES = [
    "Ada",
    "Bruno",
    "Chen",
    "Dara",
    "Elif",
    "Farid",
    "Grete",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Marta",
    "Nils",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Yusuf",
    "Zoe",
]
_PRODUCTS = [
    "walnut desk", "standing lamp", "espresso grinder", "trail running shoes", "wool blanket",
    "travel adapter",
    "noise-cancelling headphones", "cast iron skillet", "yoga mat", "mechanical keyboard", "rain jacket",
    "ceramic teapot", "bike helmet", "air purifier", "carry-on suitcase", "smart thermostat", "office chair",
    "hiking backpack", "water filter", "electric kettle", "linen duvet", "garden hose", "desk organizer",
]  # fmt: skip
_CITIES = [
    "Lyon",
    "Porto",
    "Leipzig",
    "Gdansk",
    "Valencia",
    "Utrecht",
    "Bergen",
    "Turin",
    "Brno",
    "Ghent",
    "Malmo",
    "Cork",
    "Graz",
    "Bilbao",
    "Tartu",
]
_CARRIERS = ["DHL", "UPS", "La Poste", "PostNL", "DPD", "GLS", "Royal Mail"]
_TOOLS = ["lookup_order", "refund_payment", "track_parcel", "search_faq", "update_address", "create_ticket"]
_TEMPLATES = [
    "Hi, this is {name}; my order {order} for the {product} still shows 'preparing' after {days} days.",
    "The {carrier} tracking page for parcel {parcel} has not moved since it left {city} on {date}.",
    "I was charged {amount} EUR twice on {date} for the {product}; please refund one of the payments.",
    "Can you change the delivery address of order {order} to {number} Station Road, {city}?",
    "The {product} arrived with a cracked {part}, and I would like a replacement rather than a refund.",
    "Order {order} was split into {count} parcels; only {arrived} of them reached me in {city}.",
    "I called {carrier} and they say the parcel {parcel} was returned to sender on {date}.",
    "My discount code {code} did not apply at checkout, so I paid {amount} EUR instead of {lower} EUR.",
    "Looking up order {order}: placed on {date}, paid by card, {count} items, shipping to {city}.",
    "The refund of {amount} EUR for order {order} was issued on {date} and takes {days} business days.",
    "Parcel {parcel} is with {carrier}; the last scan was at the {city} hub {hours} hours ago.",
    "I have opened ticket {ticket} for the damaged {product}; a courier will collect it on {date}.",
    "According to the policy, items like the {product} can be returned within {days} days of delivery.",
    "The customer {name} has {count} open orders; the oldest, {order}, is {days} days late.",
    "I checked the warehouse: {count} units of the {product} are in stock in {city} and ship tomorrow.",
    "Calling {tool} with order {order} returned status '{status}' and carrier {carrier}.",
    "Sorry for the delay, {name}. I can offer free express shipping on your next order of the {product}.",
    "The payment provider reports that charge {charge} for {amount} EUR was captured on {date}.",
    "Please confirm the last four digits of the card used for order {order} so I can verify the refund.",
    "Your replacement {product} left our {city} warehouse today; the new tracking number is {parcel}.",
    "The address on order {order} is missing a flat number, which is why {carrier} could not deliver it.",
    "I see a note from {name} on {date}: the {product} was a gift and should not include the invoice.",
    "Given the {days}-day delay, the order qualifies for a {percent}% goodwill credit of {lower} EUR.",
    "The {product} in order {order} is backordered until {date}; would you like to wait or cancel it?",
]  # fmt: skip
_STATUSES = ["in_transit", "delayed", "returned", "delivered", "exception", "label_created"]
_PARTS = ["base", "lid", "handle", "screen", "corner", "zip", "switch", "strap"]


def _sentence(rng: random.Random) -> str:
    amount = rng.randint(9, 900) + rng.choice((0, 0.5, 0.99))
    return rng.choice(_TEMPLATES).format(
        name=rng.choice(_NAMES),
        order=f"#{rng.randint(100000, 999999)}",
        product=rng.choice(_PRODUCTS),
        days=rng.randint(2, 30),
        carrier=rng.choice(_CARRIERS),
        parcel=f"{rng.choice('JVKRZ')}{rng.randint(10**9, 10**10 - 1)}",
        city=rng.choice(_CITIES),
        date=f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
        amount=amount,
        lower=round(amount * rng.uniform(0.5, 0.9), 2),
        number=rng.randint(1, 240),
        part=rng.choice(_PARTS),
        count=rng.randint(2, 6),
        arrived=1,
        code=f"SAVE{rng.randint(10, 60)}-{rng.randint(1000, 9999)}",
        hours=rng.randint(2, 96),
        ticket=f"T-{rng.randint(10000, 99999)}",
        tool=rng.choice(_TOOLS),
        status=rng.choice(_STATUSES),
        charge=f"ch_{rng.getrandbits(48):012x}",
        percent=rng.choice((10, 15, 20, 25)),
    )


class ChatText:
    """Messages of about `chars` characters, each a new combination of pooled sentences."""

    def __init__(self, *, seed: int = 7, pool: int = 6000) -> None:
        self._rng = random.Random(seed)
        self._pool = [_sentence(self._rng) for _ in range(pool)]
        self._count = 0

    def message(self, chars: int = 500) -> str:
        self._count += 1
        parts = [f"(turn {self._count})"]
        size = 0
        while size < chars:
            sentence = self._pool[self._rng.randrange(len(self._pool))]
            parts.append(sentence)
            size += len(sentence) + 1
        return " ".join(parts)[:chars]

    def tool(self) -> str:
        return self._rng.choice(_TOOLS)
