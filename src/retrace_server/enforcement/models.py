"""Guardrail tables: policies, the usage they count, holds waiting for a person, breaches, plan quotas.

Usage lives in the database, updated by single-statement upserts, so every server process sharing
it counts the same run once and agrees on the verdict.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import JsonColumn, UtcDateTime, utcnow


class Policy(Base):
    __tablename__ = "enforcement_policies"
    __table_args__ = (Index("ix_enforcement_policies_user_created", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    action: Mapped[str] = mapped_column(String(8))
    project_id: Mapped[str | None] = mapped_column(String(256))
    trace_name: Mapped[str | None] = mapped_column(String(512))
    # The kind's own settings (ceilings, tools, timeout), as the API names them.
    spec: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PolicySet(Base):
    """One row per user with policies: bumped by every policy change, so a process knows when the
    policies it holds in memory are stale with one indexed read."""

    __tablename__ = "enforcement_policy_sets"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[int] = mapped_column(Integer)


class RunUsage(Base):
    """What one run (trace) has used so far, as counted by checks and by ingestion."""

    __tablename__ = "enforcement_runs"
    __table_args__ = (Index("ix_enforcement_runs_updated", "updated_at"),)

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    steps: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    usd: Mapped[float] = mapped_column(Float, default=0.0)
    # Period scopes this run's usage has been added to (see `usage.period_scopes`).
    scopes: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RunSpan(Base):
    """A span already counted in its run, with the figures counted: a check and the ingestion of
    the same span add only what the other has not."""

    __tablename__ = "enforcement_run_spans"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    usd: Mapped[float] = mapped_column(Float, default=0.0)


class ToolCount(Base):
    """How many times a run called one tool with the same arguments (`name` + args hash)."""

    __tablename__ = "enforcement_tool_counts"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tool_key: Mapped[str] = mapped_column(String(600), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class PeriodUsage(Base):
    """Spend of one period scope (`day:2026-12-01|<project>|<trace name>`) across runs."""

    __tablename__ = "enforcement_period_usage"
    __table_args__ = (Index("ix_enforcement_period_usage_updated", "updated_at"),)

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    scope: Mapped[str] = mapped_column(String(800), primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    usd: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Hold(Base):
    """An action waiting for a person: pending, then approved, denied or expired."""

    __tablename__ = "enforcement_holds"
    __table_args__ = (
        Index("ix_enforcement_holds_user_status_created", "user_id", "status", "created_at"),
        Index("ix_enforcement_holds_user_run", "user_id", "run_id", "policy_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # No foreign key: a hold stays on record after its policy is deleted.
    policy_id: Mapped[str] = mapped_column(String(36))
    policy_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str | None] = mapped_column(String(128))
    span_id: Mapped[str | None] = mapped_column(String(128))
    tool_name: Mapped[str | None] = mapped_column(String(512))
    tool_args_hash: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    on_timeout: Mapped[str] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PolicyBreach(Base):
    """A stored trace broke a policy: the spans were kept, the trace is marked."""

    __tablename__ = "enforcement_breaches"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    policy_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class QuotaUsage(Base):
    """Traces a user has recorded in one calendar month (UTC), against the plan's monthly quota."""

    __tablename__ = "quota_usage"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    traces: Mapped[int] = mapped_column(Integer, default=0)


class QuotaAdmission(Base):
    """Trace ids already counted this month, so that a re-sent trace is not counted twice."""

    __tablename__ = "quota_admissions"
    __table_args__ = (Index("ix_quota_admissions_user_month", "user_id", "month"),)

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))
