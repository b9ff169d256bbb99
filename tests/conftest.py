"""Fixtures: a real server over a real database, per backend.

The suite runs on SQLite always and on PostgreSQL too when RETRACE_TEST_POSTGRES_URL is set;
`--db sqlite|postgres` picks one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from retrace_server.config import Settings
from tests.support.jwt_keys import JwtSigner
from tests.support.server import ApiUser, RunningServer, create_user, fresh_database, start_server

POSTGRES_URL = os.environ.get("RETRACE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("RETRACE_TEST_REDIS_URL")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db", choices=["sqlite", "postgres", "all"], default="all", help="database backends to test"
    )


def _backends(config: pytest.Config) -> list[str]:
    choice = config.getoption("--db")
    if choice == "sqlite":
        return ["sqlite"]
    if choice == "postgres":
        return ["postgres"]
    return ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", _backends(metafunc.config), scope="session")


@pytest.fixture(scope="session")
def jwt_signer() -> JwtSigner:
    return JwtSigner()


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(backend, str(tmp_path_factory.mktemp(backend)), POSTGRES_URL) as url:
        yield url


@pytest.fixture(scope="session")
def make_settings(database_url: str, jwt_signer: JwtSigner) -> Callable[..., Settings]:
    """Settings for a test server on this backend's database; keyword arguments override."""

    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "jwt_public_key": jwt_signer.public_pem,
            "rate_limit_enabled": False,
            "embedder": "none",
            "indexer_enabled": False,
            "public_url": "http://retrace.test",
            **overrides,
        }
        return Settings(_env_file=None, **values)

    return _make


@pytest.fixture(scope="session")
def server(make_settings: Callable[..., Settings]) -> Iterator[RunningServer]:
    running = start_server(make_settings())
    yield running
    running.stop()


@pytest.fixture
def make_user(server: RunningServer) -> Callable[..., ApiUser]:
    def _make(**kwargs: object) -> ApiUser:
        return create_user(server, **kwargs)  # type: ignore[arg-type]

    return _make


@pytest.fixture
def alice(make_user: Callable[..., ApiUser]) -> ApiUser:
    return make_user()


@pytest.fixture
def bob(make_user: Callable[..., ApiUser]) -> ApiUser:
    return make_user()
