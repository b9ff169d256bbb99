from retrace_server.db.base import Base
from retrace_server.db.engine import Database

__all__ = ["Base", "Database"]
