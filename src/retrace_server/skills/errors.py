"""Refusals of the skills domain."""

from __future__ import annotations

from retrace_server.errors import Conflict, NotFound


class SkillNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Skill")


class SkillVersionNotFound(NotFound):
    def __init__(self, version: int) -> None:
        super().__init__(f"Version {version} of this skill")


class SkillNameTaken(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"You already have a skill named {name!r}")


class SkillChangedConcurrently(Conflict):
    def __init__(self) -> None:
        super().__init__("The skill was changed concurrently; retry the update")
