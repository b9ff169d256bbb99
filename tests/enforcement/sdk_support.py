"""Running the guardrail agents (agent_script.py) as the official SDK's users would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.server import ApiUser, RunningServer

AGENT_SCRIPT = Path(__file__).with_name("agent_script.py")
_LOCAL_LIMITS = ("RETRACE_MAX_STEPS_PER_RUN", "RETRACE_MAX_TOKENS_PER_RUN", "RETRACE_MAX_USD_PER_RUN")


def agent_env(server: RunningServer, user: ApiUser, llm_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RETRACE_BASE_URL": server.url,
        "RETRACE_API_KEY": user.key,
        "RETRACE_TRANSPORT": "http",
        "RETRACE_TELEMETRY": "0",
        "RETRACE_SERVER_ENFORCEMENT": "true",
        "FAKE_LLM_URL": llm_url,
        **extra,
    }
    for name in _LOCAL_LIMITS:
        env.pop(name, None)
    return env


def start_agent(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(AGENT_SCRIPT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    """The agent's printed result and its log, once it has exited cleanly."""
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result, stderr


def run_agent(env: dict[str, str], *args: str) -> dict[str, Any]:
    result, stderr = finish(start_agent(env, *args))
    assert "rejected" not in stderr and "unreachable" not in stderr, stderr
    return result
