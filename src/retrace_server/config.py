"""Server settings, read from `RETRACE_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import cached_property
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./retrace.db"
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_BACKEND_ALIASES = {
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}
# libpq's name for what asyncpg calls `ssl` (it takes keyword arguments, not a libpq DSN).
_ASYNCPG_PARAMETERS = {"sslmode": "ssl"}


def async_database_url(url: str) -> str:
    """The URL people write, with the async driver the server runs on.

    `sqlite:///path.db` becomes `sqlite+aiosqlite:///path.db`; `postgresql://`, `postgres://` and
    URLs naming a synchronous driver (`postgresql+psycopg2://`) become `postgresql+asyncpg://`,
    with libpq's `sslmode` and `connect_timeout` renamed as asyncpg names them.
    """
    scheme, separator, rest = url.strip().partition("://")
    backend = _BACKEND_ALIASES.get(scheme.partition("+")[0].lower()) if separator else None
    if backend is None:
        raise ValueError(
            # Only the scheme is quoted: the rest may hold a password.
            f"expected sqlite:///path/retrace.db or postgresql://user@host/db, "
            f"not a URL starting {scheme + separator!r}"
        )
    if backend == "postgresql":
        location, question, query = rest.partition("?")
        if question:
            pairs = [(_ASYNCPG_PARAMETERS.get(k, k), v) for k, v in parse_qsl(query, keep_blank_values=True)]
            rest = f"{location}?{urlencode(pairs)}"
    return f"{ASYNC_DRIVERS[backend]}://{rest}"


class Settings(BaseSettings):
    # Errors never quote a setting's value: database URLs and API keys hold secrets.
    model_config = SettingsConfigDict(
        env_prefix="RETRACE_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # Server
    host: str = Field("127.0.0.1", description="Interface `serve` listens on.")
    port: int = Field(3001, description="Port `serve` listens on.")
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description=(
            "sqlite:///path.db or postgresql://user@host/db (postgres:// too); the async driver "
            "(aiosqlite, asyncpg) is chosen by the server, and URLs naming it are accepted as they are."
        ),
    )
    database_pool_size: int = Field(10, description="Connections per process (PostgreSQL).")
    log_level: str = Field("info", description="Python log level name.")
    max_body_bytes: int = Field(10 * 1024 * 1024, description="Largest accepted request body (413 above).")
    public_url: str = Field("http://localhost:3001", description="Base URL used in links (tapes, billing).")

    # JWT (Clerk-compatible)
    jwt_public_key: str | None = Field(None, description="PEM public key that verifies RS256 Bearer JWTs.")
    jwt_jwks_url: str | None = Field(None, description="JWKS URL that verifies RS256 Bearer JWTs.")
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_authorized_parties: str | None = Field(
        None, description="Comma-separated origins accepted in the `azp` claim, when the token has one."
    )

    # Rate limits (requests per minute)
    rate_limit_enabled: bool = Field(True, description="false turns rate limiting off.")
    rate_limit_free_write: int = 100
    rate_limit_free_read: int = 300
    rate_limit_pro_write: int = 500
    rate_limit_pro_read: int = 1500
    rate_limit_ip: int = Field(300, description="Unauthenticated requests per minute per client IP.")
    rate_limit_auth_failures: int = Field(20, description="Failed authentications per minute per client IP.")
    redis_url: str | None = Field(None, description="Redis URL that shares rate-limit counters.")

    # Billing (Dodo Payments)
    dodo_api_key: str | None = None
    dodo_environment: Literal["test_mode", "live_mode"] = "test_mode"
    dodo_base_url: str | None = None
    dodo_webhook_secret: str | None = None
    dodo_pro_product_id: str | None = None

    # Plan quotas (apply only when billing is configured: RETRACE_DODO_API_KEY)
    plan_free_monthly_traces: int = Field(
        10_000, ge=0, description="Traces a month on the Free plan; 0 = unlimited."
    )
    plan_pro_monthly_traces: int = Field(
        0, ge=0, description="Traces a month on the Pro plan; 0 = unlimited."
    )

    # Golden baselines
    regression_tolerance: float = Field(
        0.1, ge=0, description="Share of a baseline's tokens or cost a later run may differ by unjudged."
    )

    # Embeddings and search
    embedder: Literal["auto", "local", "openai", "none"] = Field(
        "auto", description="auto = local when installed, else none."
    )
    embedding_base_url: str | None = None
    embedding_api_key: str | None = None
    embedding_model: str = "text-embedding-3-small"
    indexer_enabled: bool = Field(True, description="Run the span indexing worker inside `serve`.")

    # Replay providers
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = None
    replay_wait_s: float = Field(30.0, description="How long a replay request waits before answering 202.")
    model_prices: str | None = Field(
        None,
        description='JSON price overrides: {"model": {"input": x, "output": y, "cached_input": z}}',
    )

    # Live stream (/ws/v1/stream)
    stream_ping_interval_s: float = Field(
        20.0, description="How often the server pings a stream; one silent for three intervals is closed."
    )
    stream_command_poll_s: float = Field(
        1.0, description="How often an agent's stream looks for replay commands sent by other processes."
    )

    @field_validator("database_url")
    @classmethod
    def _with_async_driver(cls, value: str) -> str:
        return async_database_url(value)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def authorized_parties(self) -> frozenset[str]:
        raw = self.jwt_authorized_parties or ""
        return frozenset(p.strip() for p in raw.split(",") if p.strip())
