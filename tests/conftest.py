"""Shared fixtures: a real daemon (aiohttp server on a loopback port, real SQLite file,
real actors) per test, and helpers that speak to it over HTTP as a user would."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from yarl import URL

from core.config import Config
from daemon.config import load_config
from web.app import make_app
from web.front import Front, FrontSite

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
if not FIXTURES.exists():  # CI clones the repo with shared/ beside it
    FIXTURES = Path(__file__).resolve().parent / "fixtures"


# `make test` runs the suite on three pytest-xdist workers (`-n 3 --dist loadgroup`). Each
# worker is its own process (its own event loop, Pykka registry, rlimits, environment),
# every test has its own tmp_path, and daemons listen on port 0; what the workers share is
# the machine. The tests of one group below run one after the other on one worker:
# - "chromium": real headless Chromium, the heaviest tests of all; they also share
#   test-output/ (a test empties its screenshot folder before it starts) and one browser
#   process per worker (tests/chromium.py). A test in another module that asks for a
#   browser fails and says to add its module here.
# - "services": real nginx, redis-server and systemd-nspawn on ports picked by probing
#   (tests/ports.py: below the ephemeral range, a block per worker), and whole systems
#   booted in containers.
SERIAL_GROUPS = {
    "chromium": {"test_page_browser", "test_page_engagement", "test_page_insights",
                 "test_page_language", "test_page_sending", "test_page_skips",
                 "test_relay_page", "test_cluster_page"},
    "services": {"test_nginx", "test_cluster_nginx", "test_cluster_push",
                 "test_systemd_unit", "test_service_systemd"},
}


# Modules with tests of 10 s and more. Work is handed out longest first, so that no worker
# is left with a long test at the end while the other has nothing to do: by each test's
# time in the last run (.pytest_cache), else (a fresh clone) by a guess from this list.
LONG_MODULES = ("test_reliability_crash", "test_ws_abuse", "test_hostile_schemathesis",
                "test_limits", "test_cloud_plain", "test_reliability_storage",
                "test_one_daemon", "test_insights_crash", "test_durability",
                "test_engagement_durability", "test_ledger_bulk", "test_ledger_property",
                "test_recovery_image_cadence", "test_recovery_images",
                "test_recovery_backlog", "test_inbound_media", "test_carry_merge",
                "test_attribution_columns", "test_sending_big_create",
                "test_sending_crash", "test_index_upgrade")
DURATIONS = "campaignd/durations"  # .pytest_cache key: seconds per test id, last run


def module_of(nodeid: str) -> str:
    return nodeid.partition("::")[0].rpartition("/")[2].removesuffix(".py")


def serial_group(nodeid: str) -> str | None:
    """The group of a test id ("tests/test_nginx.py::test_x[1]" -> "services")."""
    module = module_of(nodeid)
    return next((group for group, modules in SERIAL_GROUPS.items() if module in modules),
                None)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with the groups above, longest work first.

    xdist's own loadgroup reads `xdist_group` marks by appending "@group" to each test id
    on the worker, which pytest 9.2 no longer lets it do (pytest-xdist issue 1386): the
    groups silently did nothing and two Chromiums, two nginx tests ran side by side. This
    scheduler groups by module name instead, on the controller, and hands out the
    longest work first (a group counts as the sum of its tests)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    cache = getattr(config, "cache", None)
    last: dict[str, float] = (cache.get(DURATIONS, {}) if cache else {}) or {}

    def estimate(nodeid: str) -> float:
        """Seconds: the last run's time, else a guess by kind."""
        if nodeid in last:
            return last[nodeid]
        return 10.0 if module_of(nodeid) in LONG_MODULES else 5.0 if serial_group(
            nodeid) else 0.5

    def expected(unit: tuple[str, dict[str, bool]]) -> float:
        return sum(estimate(nodeid) for nodeid in unit[1])

    class SerialGroupScheduling(LoadGroupScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return serial_group(nodeid) or super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the work queue is complete before the first hand-out
                units = sorted(self.workqueue.items(), key=expected, reverse=True)
                self.workqueue.clear()
                self.workqueue.update(units)
                self.ordered = True
            super()._assign_work_unit(node)

    return SerialGroupScheduling(config, log)


_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Keep each test's time (setup, call, teardown) for the next run's order; on the
    controller, which sees every worker's reports, or in a run without workers."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _durations:
        return
    cache.set(DURATIONS, {**(cache.get(DURATIONS, {}) or {}), **_durations})


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def webjs_ack(message_id: str, ack: int) -> dict[str, Any]:
    """The seed service's message_status_updated fixture for another id and ACK level."""
    doc = copy.deepcopy(fixture_json("webjs_message_status_updated.json"))
    doc["data"]["message_id"] = message_id
    doc["data"]["ack_level"] = ack
    return doc


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    config = load_config(None, environ={})
    values = {"store.path": str(tmp_path / "campaignd.sqlite3"),
              "store.checkpoint_interval": 0.2, **overrides}
    return config.with_overrides(**values)


class Daemon:
    """A running daemon and an HTTP client for it."""

    def __init__(self, server: TestServer, session: ClientSession) -> None:
        self.server = server
        self.session = session
        self.runtime = server.app[__import__("web.keys").keys.RUNTIME]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url(path), **kw) as resp:
            text = await resp.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return resp.status, body

    async def post_json(self, path: str, doc: Any, **kw: Any) -> tuple[int, Any]:
        return await self.request("POST", path, json=doc, **kw)

    async def create_campaign(self, workspace_id: int = 1, name: str = "Promo",
                              uuid: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"workspace_id": workspace_id, "name": name}
        if uuid:
            doc["uuid"] = uuid
        status, body = await self.post_json("/api/campaigns", doc)
        assert status == 201, body
        return body["campaign"]

    async def register(self, uuid: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        status, body = await self.post_json(f"/api/campaigns/{uuid}/messages",
                                            {"messages": messages})
        assert status in (200, 201), body
        return body

    async def stats(self, uuid: str) -> dict[str, Any]:
        status, body = await self.request("GET", f"/api/campaigns/{uuid}")
        assert status == 200, body
        return body["campaign"]["statistics"]


class FrontTestServer(TestServer):
    """aiohttp's TestServer listening through the webhook front (web/front.py) as
    `campaignd serve` does (daemon/serve.py), so the suite's webhooks take the front's
    path and everything else aiohttp's, handed over as in production."""

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None,
                           **kwargs: Any) -> None:
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(**kwargs)
        await self.runner.setup()
        sock = self.socket_factory(self.host, self.port or 0, socket.AF_INET)
        self.host, self.port = sock.getsockname()[:2]
        front = Front.of_app(self.runner, self.runner._shutdown_timeout)
        await FrontSite(self.runner, sock, front).start()
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")


async def start_daemon(config: Config) -> tuple[TestServer, ClientSession]:
    # The same bound on waiting for in-flight requests at shutdown as `campaignd serve`
    # (daemon/serve.py), not aiohttp's 60 s: a test's teardown must not hang on one.
    kind = FrontTestServer if config["server.webhook_front"] else TestServer
    server = kind(make_app(config), host="127.0.0.1", port=0, shutdown_timeout=3)
    await server.start_server()
    return server, ClientSession()


def hold_recovery(runtime: Any) -> asyncio.Event:
    """Keep `runtime.recover` waiting until the returned event is set: with
    `make_app(..., listen_early=True)` the daemon listens as `campaignd serve` does, and
    the test acts while the state is being recovered."""
    release = asyncio.Event()
    recover = runtime.recover

    async def held_recover() -> None:  # the real recovery, started when the test says
        await release.wait()
        await recover()

    runtime.recover = held_recover
    return release


async def close_server(server: TestServer, timeout: float = 60.0) -> None:
    """Stop a test daemon; if it hangs, fail with every asyncio task's stack and every
    thread's (a shutdown that hangs is a defect to find, not a test to wait out)."""
    task = asyncio.ensure_future(server.close())
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if task in done:
        task.result()
        return
    import faulthandler
    import io
    import sys

    out = io.StringIO()
    for other in asyncio.all_tasks():
        other.print_stack(file=out)
    sys.stderr.write("\n--- the daemon did not stop; asyncio tasks:\n" + out.getvalue())
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    raise AssertionError(f"the daemon did not stop within {timeout} s (stacks on stderr)")


@pytest.fixture
async def daemon_factory(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[tuple[TestServer, ClientSession]] = []

    async def factory(**overrides: Any) -> Daemon:
        config = make_config(tmp_path, **overrides)
        server, session = await start_daemon(config)
        started.append((server, session))
        return Daemon(server, session)

    yield factory
    for server, session in reversed(started):
        await session.close()
        await close_server(server)


@pytest.fixture
async def daemon(daemon_factory: Any) -> Daemon:
    return await daemon_factory()


@pytest.fixture(scope="session")
def chromium_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """This worker's one Chromium (tests/chromium.py), started by the first page test and
    killed when the session ends, whatever happened."""
    from tests.chromium import SharedChromium

    chromium = SharedChromium(tmp_path_factory.mktemp("chromium"))
    try:
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture
def chromium(request: pytest.FixtureRequest, chromium_process: Any) -> Any:
    """The worker's Chromium, for tests of the "chromium" group only (they must not run
    beside each other: SERIAL_GROUPS)."""
    if serial_group(request.node.nodeid) != "chromium":
        pytest.fail(f"{request.node.nodeid} uses Chromium: add its module to "
                    "SERIAL_GROUPS['chromium'] in tests/conftest.py")
    return chromium_process


@pytest.fixture(autouse=True)
def _no_leaked_actors() -> Any:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


async def eventually(check: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll an async check until it returns a truthy value (the system is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


def migrated_database(path: Path) -> Path:
    """An empty database file with every migration (the daemon's Store opened and closed:
    the close moves the WAL into the file, so the file alone can be copied)."""
    from store.db import Store

    async def make() -> None:
        store = Store(path)
        await store.open()
        await store.close()

    asyncio.run(make())
    return path
