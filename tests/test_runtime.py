"""Process-wide tuning a running server applies."""

from __future__ import annotations

import gc
from collections.abc import Callable

from retrace_server.app import YOUNG_COLLECTION_THRESHOLD
from retrace_server.config import Settings
from tests.support.server import running_server


def test_startup_objects_stay_out_of_garbage_collections(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings()):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
    # Once the server stops, what it kept can be collected again.
    assert gc.get_freeze_count() == 0
