"""The status API's load in `make bench`: a client in a process of its own, as the portal is.

Run: .venv/bin/python bench/api_client.py RATE SECONDS < {"urls": [...], "headers": {...}}
GETs the URLs in turn, RATE a second for SECONDS (at most 200 in flight: a stalled API is
measured, not flooded), then prints {"latencies": [seconds of each 200 answer], "failed": N,
"seconds": how long it ran} as JSON. Its own process, so that what it times is the API's answer
and not the bench's own interpreter: the bench holds the whole fleet (100k routers' entries and
targets), and its collections and scrapes would stand in the latencies.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def load(urls: list[str], headers: dict[str, str], rate: float, seconds: float) -> None:
    latencies: list[float] = []
    failed = 0

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        nonlocal failed
        started = time.perf_counter()
        try:
            async with session.get(url, headers=headers) as response:
                await response.read()
                ok = response.status == 200
        except (TimeoutError, aiohttp.ClientError):
            ok = False  # unanswered within the session's 30 s: counted, not timed
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            failed += 1

    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = time.perf_counter()
        sent = 0
        while (due := start + sent / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if len(tasks) < 200:
                task = asyncio.create_task(one(session, urls[sent % len(urls)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks, return_exceptions=True)
        took = time.perf_counter() - start
    json.dump({"latencies": latencies, "failed": failed, "seconds": took}, sys.stdout)


if __name__ == "__main__":
    asked = json.load(sys.stdin)
    asyncio.run(load(asked["urls"], asked["headers"], float(sys.argv[1]), float(sys.argv[2])))
