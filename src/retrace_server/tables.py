"""Every domain's tables, so that `metadata` describes the whole schema (for migrations)."""

from retrace_server.auth import models as auth_models
from retrace_server.baselines import models as baseline_models  # noqa: F401
from retrace_server.billing import models as billing_models
from retrace_server.db.base import Base
from retrace_server.embeddings import models as embedding_models  # noqa: F401
from retrace_server.enforcement import models as enforcement_models  # noqa: F401
from retrace_server.forks import models as fork_models  # noqa: F401
from retrace_server.memory import models as memory_models  # noqa: F401
from retrace_server.skills import models as skill_models  # noqa: F401
from retrace_server.stream import models as stream_models  # noqa: F401
from retrace_server.tapes import models as tape_models  # noqa: F401
from retrace_server.traces import models as trace_models

metadata = Base.metadata

__all__ = ["auth_models", "billing_models", "metadata", "trace_models"]
