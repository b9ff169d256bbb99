"""FastAPI dependencies for what the application holds per process."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrace_server.config import Settings
from retrace_server.db.engine import Database


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
