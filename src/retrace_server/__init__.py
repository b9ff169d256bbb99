"""Retrace server: a self-hostable platform for AI-agent runs."""

__version__ = "0.1.0"
