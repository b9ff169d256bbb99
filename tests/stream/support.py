"""Runs `agent_script.py` (the official SDK, unchanged) in a subprocess and talks to it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.wait import wait_for

AGENT_SCRIPT = Path(__file__).with_name("agent_script.py")
WAIT_S = 90.0


class AgentProcess:
    def __init__(self, *args: str, base_url: str, api_key: str, llm_url: str, **env: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(AGENT_SCRIPT), *args],
            env={
                **os.environ,
                "RETRACE_BASE_URL": base_url,
                "RETRACE_API_KEY": api_key,
                "RETRACE_TELEMETRY": "0",
                "RETRACE_FLUSH_TIMEOUT": "30",
                "FAKE_LLM_URL": llm_url,
                **env,
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = ""
        self._stderr_reader = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._pump_stdout, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_stderr(self) -> None:
        assert self._proc.stderr is not None
        self.stderr = self._proc.stderr.read()

    def next_message(self) -> dict[str, Any]:
        """The next JSON line the agent printed."""
        try:
            line = self._lines.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"the agent printed nothing for {WAIT_S}s; stderr: {self.stderr}") from None
        if line is None:
            self._proc.wait(timeout=WAIT_S)
            raise AssertionError(f"the agent exited ({self._proc.returncode}); stderr: {self.stderr}")
        message: dict[str, Any] = json.loads(line)
        return message

    def proceed(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def finish(self) -> int:
        """Closes its stdin (an agent waiting for commands then exits) and waits for the exit."""
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        code = self._proc.wait(timeout=WAIT_S)
        self._stderr_reader.join(timeout=WAIT_S)
        return code

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=WAIT_S)


def wait_until(check: Callable[[], Any], *, what: str, timeout: float = WAIT_S) -> Any:
    """Polls `check` until it returns something truthy, which is returned."""
    return wait_for(check, timeout=timeout, interval=0.05, what=what)


def get_trace(client: httpx.Client, trace_id: str) -> dict[str, Any] | None:
    r = client.get(f"/api/v1/traces/{trace_id}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
