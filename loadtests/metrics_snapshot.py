"""Each service's Prometheus counters at the end of a cell, kept beside its logs.

A cell's figures say how long it took; the services' own counters say why (the provider's
turns, spread sends, node choices, the gateway's refusals). They are cumulative from the
stack's start, so the cells of one group differ by what happened between two snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx

SCRAPE_TIMEOUT_S = 10.0


async def save_metrics(urls: Mapping[str, str], folder: Path, label: str) -> list[Path]:
    """Write `{label}.{service}.metrics.txt` in `folder` for each service's /metrics URL;
    a service that does not answer gets a file that says why. The files, in `urls`' order."""
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S, trust_env=False) as client:
        texts = await asyncio.gather(*(_scrape(client, url) for url in urls.values()))
    return await asyncio.to_thread(_write, folder, label, dict(zip(urls, texts, strict=True)))


def _write(folder: Path, label: str, texts: Mapping[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for service, text in texts.items():
        path = folder / f"{label}.{service}.metrics.txt"
        path.write_text(text)
        files.append(path)
    return files


async def _scrape(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return f"# not scraped: {url}: {exc!r}\n"
    if response.status_code != 200:
        return f"# not scraped: {url}: HTTP {response.status_code}\n"
    return response.text
