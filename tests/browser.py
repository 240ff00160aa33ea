"""A page in headless Chromium (Debian's ``chromium``), driven over the DevTools protocol with tornado's
websocket client (tornado comes with dask.distributed in the test extra): every request the page made,
its console messages and log errors, whether each image decoded, and screenshots at given widths."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


def chromium() -> str | None:
    """Return the path of Debian's chromium, or None when it is not installed."""
    return shutil.which("chromium")


@dataclass
class PageVisit:
    """What loading a page did: requested URLs, console messages, log errors, images that did not
    decode (their alt text), and a PNG screenshot per viewport width."""

    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: int = 0
    screenshots: dict[int, bytes] = field(default_factory=dict)


class _Session:
    """One DevTools websocket: numbered commands, events collected by method."""

    def __init__(self, connection: Any) -> None:
        self.connection, self.ids, self.events = connection, itertools.count(1), []

    async def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.connection.write_message(json.dumps(message))
        while True:
            text = await asyncio.wait_for(self.connection.read_message(), 30)
            if text is None:
                raise RuntimeError("chromium closed the DevTools connection")
            reply = json.loads(text)
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    async def wait_for(self, method: str, seconds: float = 60) -> None:
        while not any(event.get("method") == method for event in self.events):
            text = await asyncio.wait_for(self.connection.read_message(), seconds)
            if text is None:
                raise RuntimeError("chromium closed the DevTools connection")
            self.events.append(json.loads(text))


_CHECK_IMAGES = """JSON.stringify(Array.from(document.images).map(
  i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0})))"""


async def _visit(address: str, page: Path, widths: tuple[int, ...]) -> PageVisit:
    from tornado.websocket import websocket_connect

    connection = await websocket_connect(address, max_message_size=256 * 2**20)
    browser = _Session(connection)
    target = (await browser.send("Target.createTarget", url="about:blank"))["targetId"]
    session = (await browser.send("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
    for domain in ("Network", "Runtime", "Log", "Page"):
        await browser.send(f"{domain}.enable", session)
    await browser.send("Page.navigate", session, url=page.resolve().as_uri())
    await browser.wait_for("Page.loadEventFired")
    visit = PageVisit()
    images = json.loads(
        (await browser.send("Runtime.evaluate", session, expression=_CHECK_IMAGES))["result"]["value"]
    )
    visit.images = len(images)
    visit.broken_images = [image["alt"] for image in images if not image["ok"]]
    for width in widths:
        await browser.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        shot = await browser.send("Page.captureScreenshot", session, format="png")
        visit.screenshots[width] = base64.b64decode(shot["data"])
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            visit.console.append(" ".join(str(arg.get("value", "")) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown" or (
            method == "Log.entryAdded" and params["entry"]["level"] == "error"
        ):
            visit.errors.append(json.dumps(params)[:300])
    connection.close()
    return visit


def visit_page(page: Path, widths: tuple[int, ...] = (1280, 390)) -> PageVisit:
    """Return what loading the local ``page`` in headless Chromium did, with screenshots at ``widths``."""
    executable = chromium()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            address = None
            assert process.stderr is not None
            for line in process.stderr:
                found = re.search(r"DevTools listening on (ws://\S+)", line)
                if found:
                    address = found.group(1)
                    break
            if address is None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            return asyncio.run(_visit(address, page, widths))
        finally:
            process.kill()
            process.wait()
