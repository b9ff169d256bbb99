"""Golden marks and regression results, kept beside traces (never as columns of `traces`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import JsonColumn, UtcDateTime, utcnow


class GoldenBaseline(Base):
    """A trace marked golden: the baseline of its name and project from `marked_at` on."""

    __tablename__ = "golden_baselines"
    __table_args__ = (Index("ix_golden_baselines_scope", "user_id", "name_key", "project_key", "marked_at"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The trace's name and project when marked; "" stands for none, so lookups are equalities.
    name_key: Mapped[str] = mapped_column(String(512))
    project_key: Mapped[str] = mapped_column(String(256))
    marked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RegressionResult(Base):
    """How a completed run compared with its baseline."""

    __tablename__ = "regression_results"
    __table_args__ = (Index("ix_regression_results_user_verdict", "user_id", "verdict"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    baseline_trace_id: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    # Findings and totals; the aligned steps are computed again when asked for.
    findings: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    compared_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
