"""The navigation bar: one entry per section. A new section (guardrails' policies, holds...)
adds an entry here and a module under `web/pages/`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavEntry:
    label: str
    href: str
    # Paths of the section, so its entry shows as current on every page of it.
    prefixes: tuple[str, ...]

    def is_current(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.prefixes)


NAV: list[NavEntry] = [
    NavEntry("Runs", "/", ("/", "/traces", "/search")),
    NavEntry("Forks", "/forks", ("/forks",)),
    NavEntry("Tapes", "/tapes", ("/tapes",)),
    NavEntry("Memory", "/memory", ("/memory",)),
    NavEntry("Skills", "/skills", ("/skills",)),
    NavEntry("Guardrails", "/guardrails", ("/guardrails",)),
    NavEntry("Settings", "/settings", ("/settings",)),
]


def current_entry(path: str) -> NavEntry | None:
    # "/" would match everything: the longest matching prefix wins.
    best: tuple[int, NavEntry] | None = None
    for entry in NAV:
        for prefix in entry.prefixes:
            matches = path == prefix if prefix == "/" else entry.is_current(path) and path.startswith(prefix)
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), entry)
    return best[1] if best else None
