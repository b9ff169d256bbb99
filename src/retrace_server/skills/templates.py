"""`{variable}` placeholders of a prompt template, with `{{` and `}}` as literal braces."""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    pass


def template_variables(template: str) -> list[str]:
    """Variable names in order of first use; unbalanced braces or a bad name raise TemplateError."""
    names: dict[str, None] = {}
    i, end = 0, len(template)
    while i < end:
        char = template[i]
        if char == "}":
            if template.startswith("}}", i):
                i += 2
                continue
            raise TemplateError(f"unbalanced '}}' at position {i} (write '}}}}' for a literal brace)")
        if char != "{":
            i += 1
            continue
        if template.startswith("{{", i):
            i += 2
            continue
        close = template.find("}", i + 1)
        nested = template.find("{", i + 1)
        if close == -1 or (nested != -1 and nested < close):
            raise TemplateError(f"unbalanced '{{' at position {i} (write '{{{{' for a literal brace)")
        name = template[i + 1 : close]
        if not _NAME.fullmatch(name):
            raise TemplateError(
                f"invalid variable {{{name}}} at position {i}: use letters, digits and underscores"
            )
        names.setdefault(name, None)
        i = close + 1
    return list(names)
