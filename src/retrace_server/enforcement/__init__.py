"""Guardrails: policies the agent checks on its hot path, holds a person decides, plan quotas."""
