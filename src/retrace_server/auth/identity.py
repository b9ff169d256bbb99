"""Who a request acts for, once its credentials verified."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class CurrentUser:
    id: str
    tier: str
    auth_method: Literal["api_key", "jwt"]
    api_key_id: str | None = None
    key_last_used_at: datetime | None = None
    """When the key's use was last written, as the lookup found it (API keys only)."""
