"""`retrace-server`: serve, migrate and manage keys from the shell."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from retrace_server.auth.keys import issue_key
from retrace_server.auth.users import TIERS
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.logging_setup import LOG_FORMAT, configure_logging

cli = typer.Typer(
    help="Retrace server: record, search, share, fork and replay AI-agent runs.", no_args_is_help=True
)
keys_cli = typer.Typer(help="Manage API keys.", no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        typer.secho(f"Invalid configuration: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


def _migrate_or_exit(settings: Settings) -> None:
    try:
        asyncio.run(migrate.upgrade(settings.database_url))
    except Exception as exc:
        typer.secho(
            f"Could not migrate the database at RETRACE_DATABASE_URL ({type(exc).__name__}: {exc}).\n"
            "Check that the database is reachable and the URL reads sqlite:///path/retrace.db or "
            "postgresql://user@host/db.",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 3001]")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (use PostgreSQL when above 1)")] = 1,
) -> None:
    """Run pending migrations, then serve the API."""
    import uvicorn

    settings = _settings()
    configure_logging(settings.log_level)
    _migrate_or_exit(settings)
    uvicorn.run(
        "retrace_server.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop" if sys.platform != "win32" else "auto",
        http="httptools",
        access_log=False,
        log_config={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": {"format": LOG_FORMAT}},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default"}},
            "root": {"handlers": ["default"], "level": settings.log_level.upper()},
            "loggers": {"uvicorn.access": {"level": "WARNING"}},
        },
    )


@cli.command("migrate")
def migrate_command() -> None:
    """Apply pending database migrations and exit."""
    settings = _settings()
    _migrate_or_exit(settings)
    typer.echo("Database is up to date.", err=True)


@keys_cli.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User id; created when missing")],
    tier: Annotated[str | None, typer.Option(help="free | pro (sets the user's tier)")] = None,
) -> None:
    """Create a new API key for USER and print it (shown once; the previous key stops working)."""
    if tier is not None and tier not in TIERS:
        typer.secho(f"--tier must be one of: {', '.join(TIERS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if not user or len(user) > 128:
        typer.secho("--user must be 1-128 characters", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    settings = _settings()
    _migrate_or_exit(settings)

    async def _create() -> str:
        db = Database(settings)
        try:
            async with db.write() as session:
                return (await issue_key(session, user_id=user, tier=tier)).key
        finally:
            await db.dispose()

    key = asyncio.run(_create())
    typer.echo(key)
    typer.echo(f"Key created for {user}; store it now, it will not be shown again.", err=True)


@cli.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, help="Processes sharing the backlog (PostgreSQL)")] = 1,
) -> None:
    """Embed new and changed spans for semantic search, outside the serving processes."""
    from retrace_server.embeddings.backends import make_embedder
    from retrace_server.embeddings.commands import run_worker

    settings = _settings()
    configure_logging(settings.log_level)
    if make_embedder(settings) is None:
        typer.secho("No embedder: set RETRACE_EMBEDDER=local or openai.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if processes > 1 and settings.is_sqlite:
        message = "Several workers need PostgreSQL; SQLite has a single writer."
        typer.secho(message, fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    _migrate_or_exit(settings)
    if processes == 1:
        asyncio.run(run_worker(settings))
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_worker_process, name=f"retrace-worker-{i}") for i in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join()


def _worker_process() -> None:
    from retrace_server.embeddings.commands import run_worker

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(run_worker(_settings()))


@cli.command()
def reindex() -> None:
    """Embed every span and memory again (after changing the embedder), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from retrace_server.embeddings.backends import make_embedder
    from retrace_server.embeddings.commands import reindex as run_reindex

    settings = _settings()
    if make_embedder(settings) is None:
        typer.secho("No embedder: set RETRACE_EMBEDDER=local or openai.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    _migrate_or_exit(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns) as progress:
        memories = progress.add_task("memories", total=None)
        spans = progress.add_task("spans", total=None)
        indexed, hits = asyncio.run(
            run_reindex(
                settings,
                on_spans=lambda done, total: progress.update(spans, completed=done, total=total),
                on_memories=lambda done, total: progress.update(memories, completed=done, total=total),
            )
        )
    typer.echo(f"Reindexed {indexed} spans ({hits} texts were already embedded).", err=True)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cli()
