"""Server settings, read from `RETRACE_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./retrace.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETRACE_", env_file=".env", extra="ignore")

    # Server
    host: str = Field("127.0.0.1", description="Interface `serve` listens on.")
    port: int = Field(3001, description="Port `serve` listens on.")
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(10, description="Connections per process (PostgreSQL).")
    log_level: str = Field("info", description="Python log level name.")
    max_body_bytes: int = Field(10 * 1024 * 1024, description="Largest accepted request body (413 above).")
    public_url: str = Field("http://localhost:3001", description="Base URL used in links (tapes, billing).")

    # Web interface
    web_session_hours: float = Field(
        168.0, gt=0, description="How long a web sign-in lasts before the browser must sign in again."
    )

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

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def authorized_parties(self) -> frozenset[str]:
        raw = self.jwt_authorized_parties or ""
        return frozenset(p.strip() for p in raw.split(",") if p.strip())
