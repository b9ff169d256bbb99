"""The local model's traced encoder computes what sentence-transformers computes, and its fast
form (128 word pieces, int8 linear layers) stays close to it."""

from __future__ import annotations

import numpy as np

from retrace_server.embeddings import backends

TEXTS = [
    "refund order 4411",
    "user: The parcel arrived damaged and the customer wants their money back. " * 8,
    'tool lookup_order returned {"status": "shipped", "carrier": "DHL"}',
    "x",
]


def test_traced_encoder_matches_sentence_transformers() -> None:
    embedder = backends.LocalEmbedder(fast=False)
    ours = embedder.embed(TEXTS)
    model = backends._load_local_model(device="cpu", quantised=False, max_tokens=256, single_thread=False)
    assert isinstance(model, backends._TracedEncoder)
    reference = model.model.encode(TEXTS, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # One text alone (no padding) gives the vector it gets inside a padded batch.
    np.testing.assert_allclose(embedder.embed([TEXTS[0]])[0], ours[0], atol=1e-5)


def test_fast_embedder_stays_close_to_full_precision() -> None:
    fast, full = backends.LocalEmbedder(), backends.LocalEmbedder(fast=False)
    assert fast.id != full.id  # their vectors never share cache entries
    assert fast.id == "local:all-MiniLM-L6-v2:128:int8"
    # Below 128 word pieces only the int8 arithmetic differs.
    short = [TEXTS[0], TEXTS[2], TEXTS[3]]
    fast_vectors, full_vectors = fast.embed(short), full.embed(short)
    assert fast_vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(fast_vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(fast_vectors * full_vectors, axis=1)
    assert cosines.min() > 0.9 and cosines.mean() > 0.95
    # The meaning survives: a paraphrase is still nearer its text than an unrelated text is.
    query = fast.embed(["give the customer their money back for the broken delivery"])[0]
    scores = fast.embed(TEXTS) @ query
    assert int(np.argmax(scores)) == 1
