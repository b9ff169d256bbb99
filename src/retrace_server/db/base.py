from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of every table; the schema itself is made by the Alembic migrations."""
