"""Web interface speed in Chromium: a 10,000-span run and the runs page over 100,000 runs.

    python bench/ui.py [--spans 10000] [--runs 100000] [--repeat 5] [--chromium /usr/bin/chromium]

Figures, each the median (and worst) of `--repeat` loads in a fresh tab:
- run page: from navigation start until the tree and timeline rows are on screen (two animation
  frames after the first row and bar exist), and the browser's first contentful paint;
- span selection: from a click on a row until its panel is on screen (two frames later);
- runs page: from navigation start until the table rows are on screen.
Goals: run page < 1 s, selection < 100 ms, runs page < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from _server import serve
from read import bulk_traces

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOOLS = ("search_flights", "get_weather", "lookup_order", "read_file", "run_sql", "fetch_url", "send_email")
CITIES = ("Paris", "Lisbon", "Osaka", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Tunis", "Riga")

PAINTED = (
    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now()))))"
)
CLICK_TO_PANEL = """async (n) => {
  const rows = [...document.querySelectorAll('.tv-row:not([hidden])')];
  const row = rows[n % rows.length];
  const name = document.querySelector('#panel h2');
  const t0 = performance.now();
  row.click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const shown = document.querySelector('#panel h2').textContent;
  return [performance.now() - t0, shown !== (name && name.textContent) || n === 0];
}"""


def stamp(base: datetime, ms: float) -> str:
    return (base + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def big_run(spans: int) -> dict[str, Any]:
    """An agent run of `spans` spans with distinct text: turns of an LLM call and tool calls,
    nested under the turn, a few failing."""
    rnd = random.Random(7)
    base = datetime.now(UTC) - timedelta(hours=2)
    out: list[dict[str, Any]] = [
        {"id": "root", "span_type": "action", "name": "travel-planner", "started_at": stamp(base, 0),
         "duration_ms": spans * 40}
    ]  # fmt: skip
    turn = "root"
    for i in range(1, spans):
        city = CITIES[i % len(CITIES)]
        if i % 8 == 1:
            turn = f"turn-{i}"
            question = f"Turn {i}: compare trains and flights from {city} for {rnd.randint(1, 6)} travellers"
            out.append({
                "id": turn, "parent_id": "root", "span_type": "llm_call", "name": f"plan step {i // 8}",
                "model": "gpt-4o-mini",
                "input": {"messages": [
                    {"role": "system", "content": "You plan trips. Use tools; never invent prices."},
                    {"role": "user", "content": question},
                ], "temperature": 0.3},
                "output": f"I will call {TOOLS[i % len(TOOLS)]} for {city} "
                          f"(request {uuid.UUID(int=rnd.getrandbits(128))}).",
                "input_tokens": rnd.randint(200, 900), "output_tokens": rnd.randint(20, 120),
                "cost": round(rnd.uniform(0.0001, 0.002), 6), "started_at": stamp(base, i * 40),
                "duration_ms": rnd.randint(300, 1800),
            })  # fmt: skip
            continue
        tool = TOOLS[i % len(TOOLS)]
        out.append({
            "id": f"tool-{i}", "parent_id": turn, "span_type": "tool_call", "name": tool,
            "input": {"city": city, "day": rnd.randint(1, 28), "query": f"{tool} {city} #{i}"},
            "output": {"results": [f"{city} option {k}: {rnd.randint(40, 900)} EUR" for k in range(3)]},
            "started_at": stamp(base, i * 40 + 5), "duration_ms": rnd.randint(5, 400),
            "error": f"HTTP 503 from {tool}" if i % 211 == 0 else None,
        })  # fmt: skip
    return {"id": str(uuid.uuid4()), "name": "travel-planner (big)", "status": "completed",
            "started_at": stamp(base, 0), "ended_at": stamp(base, spans * 40), "spans": out}  # fmt: skip


def sign_in(page: Page, key: str) -> None:
    page.goto("/signin")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def page_load_ms(page: Page, url: str, ready: str) -> tuple[float, float | None]:
    page.goto(url, wait_until="commit")
    page.wait_for_selector(ready, state="attached")
    painted: float = page.evaluate(PAINTED)
    fcp = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null"
    )
    return painted, fcp


def summary(samples: list[float]) -> str:
    return f"median {statistics.median(samples):7.1f} ms   worst {max(samples):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/ui.db"
        env = {"RETRACE_EMBEDDER": "none", "RETRACE_INDEXER_ENABLED": "false"}
        with serve(url, env=env, user="viewer") as srv:
            print("server: retrace-server serve, SQLite, rate limits off, embedder none (set-up only)")
            api = httpx.Client(base_url=srv.url, headers={"x-retrace-key": srv.key}, timeout=120)
            run = big_run(args.spans)
            t0 = time.perf_counter()
            r = api.post("/api/v1/traces", json=run)
            assert r.status_code == 201, r.text
            print(f"stored a run of {args.spans:,} spans in {time.perf_counter() - t0:.1f} s")
            asyncio.run(bulk_traces(url, "viewer", args.runs))
            total = api.get("/api/v1/traces", params={"limit": 1}).json()["total"]
            print(f"stored {total:,} runs")

            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
                context = browser.new_context(base_url=srv.url, viewport={"width": 1440, "height": 900})
                sign_in(context.new_page(), srv.key)
                print(f"Chromium {browser.version}, viewport 1440x900")

                trace_url = f"/traces/{run['id']}"
                painted, fcps, clicks = [], [], []
                for _ in range(args.repeat):
                    page = context.new_page()
                    ms, fcp = page_load_ms(page, trace_url, ".tv-row .tv-bar")
                    painted.append(ms)
                    if fcp:
                        fcps.append(fcp)
                    for n in range(args.clicks // args.repeat or 1):
                        elapsed, changed = page.evaluate(CLICK_TO_PANEL, n + 1)
                        assert changed, "the panel did not change"
                        clicks.append(elapsed)
                    page.close()
                label = f"run page ({args.spans:,} spans), tree + timeline on screen:"
                print(f"{label} {summary(painted)}   goal < 1000 ms")
                if fcps:
                    print(f"run page first contentful paint:                {summary(fcps)}")
                print(f"span selection, click to panel on screen:      {summary(clicks)}   goal < 100 ms")

                for label, path in (
                    ("runs page, first page", "/"),
                    ("runs page, status=failed", "/?status=failed"),
                    (f"runs page, offset {total // 2:,}", f"/?offset={total // 2}"),
                ):
                    samples = []
                    for _ in range(args.repeat):
                        page = context.new_page()
                        ms, _fcp = page_load_ms(page, path, "#runs-body tr")
                        samples.append(ms)
                        page.close()
                    print(f"{label:40s} over {total:,} runs: {summary(samples)}   goal < 300 ms")
                browser.close()
            api.close()


if __name__ == "__main__":
    main()
