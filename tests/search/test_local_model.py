"""The local model's traced encoder computes what sentence-transformers computes."""

from __future__ import annotations

import numpy as np

from retrace_server.embeddings import backends


def test_traced_encoder_matches_sentence_transformers() -> None:
    texts = [
        "refund order 4411",
        "user: The parcel arrived damaged and the customer wants their money back. " * 8,
        'tool lookup_order returned {"status": "shipped", "carrier": "DHL"}',
        "x",
    ]
    embedder = backends.LocalEmbedder()
    ours = embedder.embed(texts)
    model = backends._load_local_model(single_thread=False)
    assert isinstance(model, backends._TracedEncoder)
    reference = model.model.encode(texts, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # One text alone (no padding) gives the vector it gets inside a padded batch.
    np.testing.assert_allclose(embedder.embed([texts[0]])[0], ours[0], atol=1e-5)
