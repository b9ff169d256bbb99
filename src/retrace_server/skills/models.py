from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime, utcnow


class Skill(Base):
    """The current version of a skill; every version, this one included, is also in `skill_versions`."""

    __tablename__ = "skills"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_skills_user_name"),
        Index("ix_skills_user_created", "user_id", "created_at"),
        Index("ix_skills_user_scope", "user_id", "scope"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    prompt_template: Mapped[str] = mapped_column(Text)
    tools: Mapped[list[Any]] = mapped_column(JsonColumn, default=list)
    max_iterations: Mapped[int] = mapped_column(Integer)
    error_handling: Mapped[str] = mapped_column(String(16))
    memory_scope: Mapped[str | None] = mapped_column(String(256))
    scope: Mapped[str | None] = mapped_column(String(256))
    tags: Mapped[list[str]] = mapped_column(JsonColumn, default=list)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonColumn, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SkillTag(Base):
    """One row per tag of a skill, so that `tags=a,b` filters through an index on both backends."""

    __tablename__ = "skill_tags"
    __table_args__ = (Index("ix_skill_tags_tag", "tag", "skill_id"),)

    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class SkillVersion(Base):
    __tablename__ = "skill_versions"
    __table_args__ = (UniqueConstraint("skill_id", "version", name="uq_skill_versions_skill_version"),)

    pk: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # Every field a PATCH can change, as it was at this version.
    content: Mapped[dict[str, Any]] = mapped_column(JsonColumn)
    changed_fields: Mapped[list[str]] = mapped_column(JsonColumn)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
