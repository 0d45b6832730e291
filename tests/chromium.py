"""One headless Chromium per pytest worker, shared by every page test.

Each page test used to launch its own Chromium (a few seconds each on two busy cores, for
about twenty tests). Now the first page test of a worker starts one Chromium process with
a DevTools port; every test connects to it over CDP from its own event loop (pytest gives
each test its own) and gets a new browser context: its own cookies, localStorage, cache
and language, as a fresh browser profile had. The process is killed when the worker's
session ends, also when a test failed, and by the kernel if the worker itself dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# What Playwright adds when it launches Chromium itself (chromiumSwitches, headless), so
# the shared browser behaves as the per-test ones did: no throttled timers in a page the
# browser thinks is in the background, no hover, no first-run or network chatter.
PLAYWRIGHT_ARGS = [
    "--disable-field-trial-config", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--disable-back-forward-cache",
    "--disable-breakpad", "--disable-component-extensions-with-background-pages",
    "--no-default-browser-check", "--disable-default-apps", "--disable-dev-shm-usage",
    "--disable-extensions", "--allow-pre-commit-input", "--disable-hang-monitor",
    "--disable-ipc-flooding-protection", "--disable-popup-blocking",
    "--disable-prompt-on-repost", "--disable-renderer-backgrounding",
    "--force-color-profile=srgb", "--metrics-recording-only", "--password-store=basic",
    "--use-mock-keychain", "--no-service-autorun", "--disable-search-engine-choice-screen",
    "--disable-features=AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,"
    "HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,MediaRouter,PaintHolding,"
    "ThirdPartyStoragePartitioning,OptimizationHints",
    "--hide-scrollbars", "--mute-audio",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,"
    "availablePointerTypes=4",
]
VIEWPORT = {"width": 1280, "height": 900}
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the worker that started it dies (a worker
    killed by a timeout or by hand runs no teardown)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class SharedChromium:
    """A Chromium process listening for DevTools on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing: run scripts/test-deps.sh "
                        "(Debian package chromium)")
        self.folder = folder  # profiles and the browser's log
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.starts = 0

    def ensure_running(self) -> str:
        """The DevTools endpoint; (re)starts the browser if it is not running (a test
        that crashed it must not fail every later one)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        return self.endpoint

    def _start(self) -> None:
        self.stop()
        profile = self.folder / f"profile-{self.starts}"
        self.starts += 1
        log = open(self.folder / "chromium.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(
                [CHROMIUM, *CHROMIUM_ARGS, *PLAYWRIGHT_ARGS, "--remote-debugging-port=0",
                 "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}",
                 "--no-startup-window"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        # Chromium writes the port it got and the browser's path once it listens.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited {self.proc.returncode}; see "
                                   f"{self.folder / 'chromium.log'}")
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                self.endpoint = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("chromium did not open its DevTools port within 60 s")

    def stop(self) -> None:
        """Kill the browser and everything it started (its own process group)."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)



@contextlib.asynccontextmanager
async def open_page(chromium: SharedChromium, **context_options: Any) -> AsyncIterator[Any]:
    """A page in a new browser context of the shared Chromium, with the checks the page
    tests make on every page: `page.errors` (uncaught exceptions) and `page.requested`
    (every URL and WebSocket it opened: no CDN, nothing from outside).

    The context asks for reduced motion, as a user may (the page's CSS then stops its
    animations; no script waits for one): the endless ones (the live dot, the sending
    stripes) had the software compositor draw frames all the time (its process: 11.2 s
    of CPU in test_page_language.py, 5.7 s without them)."""
    from playwright.async_api import async_playwright

    endpoint = chromium.ensure_running()
    async with async_playwright() as pw:
        browser = await pw.chromium.connect_over_cdp(endpoint)
        try:
            context = await browser.new_context(
                viewport=VIEWPORT, **{"reduced_motion": "reduce", **context_options})
            try:
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.errors = errors
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page.on("websocket", lambda ws: requested.append(ws.url))
                page.requested = requested
                yield page
            finally:
                await context.close()
        finally:
            await browser.close()  # over CDP: disconnects, the browser keeps running


async def screenshot(page: Any, folder: Path, name: str) -> None:
    """The whole page, from its top, as folder/name.png. (PNG, not the JPEG that encodes
    twice as fast: tall pages cost ~0.5 s of the browser's CPU each, but a PNG is what
    every viewer, and the reviews' image tools, can open.)"""
    folder.mkdir(parents=True, exist_ok=True)
    await page.evaluate("() => window.scrollTo(0, 0)")
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
