"""`campaignd stats`, `export` and `backup`: commands an operator runs beside the daemon.

By default they read the SQLite file named by the configuration, read-only, so they work
whether or not the daemon runs (SQLite's WAL lets a reader in while the daemon writes).
The file holds each row as of the last checkpoint (every store.checkpoint_interval
seconds while the daemon runs); `--url` asks a running daemon's API instead, which also
counts what arrived since.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

from domain.status import FAILED_CLASS, statistics_from_counts
from domain.timefmt import iso_time


class CommandError(Exception):
    """A problem the user can fix; printed without a traceback, exit 1."""


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise CommandError(f"no database at {path} (store.path; is --config right?)")
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        conn.execute("SELECT 1 FROM campaigns LIMIT 1")
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read {path}: {exc} (run as the daemon's user, or use "
                           "--url)") from None
    return conn


def refuse_unfinished(conn: sqlite3.Connection, no: int, uuid: str) -> None:
    """A campaign whose creation a stop interrupted has only part of its rows; the daemon
    drops it at its next start (table campaigns_creating, migration 0021), so showing it
    would show a campaign that is about to vanish."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                             " AND name = 'campaigns_creating'").fetchone()
    if has_table and conn.execute("SELECT 1 FROM campaigns_creating WHERE no = ?",
                                  (no,)).fetchone():
        raise CommandError(f"campaign {uuid!r} was still being created when the daemon "
                           "stopped: the daemon drops it at its next start, and the same "
                           "request sent again creates it whole")


def _api(url: str, path: str, token: str | None) -> urllib.request.Request:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(url.rstrip("/") + path, headers=headers)


def _open_api(request: urllib.request.Request) -> Any:
    try:
        return urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except Exception:
            message = exc.reason
        raise CommandError(f"{request.full_url}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CommandError(f"cannot reach {request.full_url}: {exc}") from None


# --- stats ---------------------------------------------------------------------------


def stats_from_file(db: Path, uuid: str) -> dict[str, Any]:
    conn = open_readonly(db)
    try:
        row = conn.execute("SELECT no, uuid, workspace_id, name, status, statistics, updated_at"
                           " FROM campaigns WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise CommandError(f"no campaign {uuid!r} in {db}")
        refuse_unfinished(conn, row[0], uuid)
        counts = [0] * (FAILED_CLASS + 1)
        for cls, n in conn.execute("SELECT cls, COUNT(*) FROM messages WHERE campaign_no = ?"
                                   " GROUP BY cls", (row[0],)):
            counts[cls] = n
        stats: dict[str, Any] = dict(statistics_from_counts(counts))
        stored = json.loads(row[5]) if row[5] else {}
        for key in ("time_to_deliver", "time_to_read"):
            if key in stored:
                stats[key] = stored[key]
        checkpoint = conn.execute("SELECT value FROM meta WHERE key = 'checkpoint_seq'"
                                  ).fetchone()
        pending = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
    finally:
        conn.close()
    source = f"{db}, as of the last checkpoint"
    if pending:
        source += f" ({pending} newer webhook batches are journaled, not yet counted here)"
    return {"campaign": {"uuid": row[1], "id": row[0], "workspace_id": row[2], "name": row[3],
                         "status": row[4], "updated_at": iso_time(row[6]),
                         "statistics": stats},
            "source": source, "checkpoint_seq": int(checkpoint[0]) if checkpoint else 0}


def stats_from_api(url: str, uuid: str, token: str | None) -> dict[str, Any]:
    quoted = urllib.parse.quote(uuid, safe="")
    with _open_api(_api(url, f"/api/campaigns/{quoted}", token)) as resp:
        doc = json.loads(resp.read())
    doc["source"] = f"{url.rstrip('/')} (live)"
    return doc


def _bar(percent: float, width: int = 30) -> str:
    filled = round(width * percent / 100)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _latency(value: dict[str, Any] | None) -> str:
    if not value or value.get("median") is None:
        return "-"
    return f"median {value['median']} s, p90 {value['p90']} s"


def render_stats(doc: dict[str, Any]) -> str:
    c = doc["campaign"]
    s = c["statistics"]
    total = s["total_message_count"]

    def share(n: int) -> str:
        return f"{n * 100 / total:5.1f} %" if total else "    -  "

    lines = [
        f"Campaign   {c['name']}",
        f"UUID       {c['uuid']}   (id {c['id']}, workspace {c['workspace_id']})",
        f"Status     {c['status']}",
        f"Source     {doc['source']}",
        "",
        f"{'':14}{'messages':>10}  {'of total':>8}",
        f"{'Total':14}{total:>10,}",
        f"{'Queued':14}{s['total_queued_count']:>10,}  {share(s['total_queued_count'])}",
        f"{'Sent':14}{s['total_sent_count']:>10,}  {share(s['total_sent_count'])}",
        f"{'Delivered':14}{s['total_delivered_count']:>10,}  "
        f"{share(s['total_delivered_count'])}",
        f"{'Read':14}{s['total_read_count']:>10,}  {share(s['total_read_count'])}",
        f"{'Played':14}{s['total_played_count']:>10,}  {share(s['total_played_count'])}",
        f"{'Failed':14}{s['total_failed_count']:>10,}  {share(s['total_failed_count'])}",
        "",
        f"Delivery rate   {s['delivery_rate']:5.1f} %  (delivered / sent)",
        f"Read rate       {s['read_rate']:5.1f} %  (read / delivered)",
        f"Progress        {s['progress']:5.1f} %  {_bar(s['progress'])}",
        f"Time to deliver {_latency(s.get('time_to_deliver'))}",
        f"Time to read    {_latency(s.get('time_to_read'))}",
    ]
    return "\n".join(lines) + "\n"


def cmd_stats(args: argparse.Namespace, db: Path) -> int:
    if args.url:
        doc = stats_from_api(args.url, args.uuid, args.token)
    else:
        doc = stats_from_file(db, args.uuid)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n" if args.json else render_stats(doc))
    return 0


# --- export --------------------------------------------------------------------------


def export_from_file(db: Path, uuid: str, out: IO[str]) -> int:
    from store.engagement import TOUCH_RANGE_SQL, summarize_rows
    from web.export import CHUNK_ROWS, EXPORT_SQL, EXPORT_SQL_0_1, EXPORT_SQL_NO_SKIPS, csv_text

    conn = open_readonly(db)
    try:
        row = conn.execute("SELECT no FROM campaigns WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise CommandError(f"no campaign {uuid!r} in {db}")
        refuse_unfinished(conn, row[0], uuid)
        out.write(csv_text([], header=True))
        count, after = 0, -1
        columns = {c[1] for c in conn.execute("PRAGMA table_info(messages)")}
        # A database this release has not opened yet: no failure fields, no attempts.
        sql = EXPORT_SQL if "skip_reason" in columns else (
            EXPORT_SQL_NO_SKIPS if "attempt_at" in columns else EXPORT_SQL_0_1)
        while True:
            rows = conn.execute(sql, (row[0], after, CHUNK_ROWS)).fetchall()
            if not rows:
                return count
            try:
                engagement = summarize_rows(conn.execute(
                    TOUCH_RANGE_SQL, (row[0], after, rows[-1][0])).fetchall())
            except sqlite3.OperationalError:  # a database no 0.2 daemon has opened yet
                engagement = {}
            out.write(csv_text(rows, engagement=engagement))
            count += len(rows)
            after = rows[-1][0]
    finally:
        conn.close()


def export_from_api(url: str, uuid: str, token: str | None, out: IO[str]) -> int:
    quoted = urllib.parse.quote(uuid, safe="")
    lines = 0
    with _open_api(_api(url, f"/api/campaigns/{quoted}/export.csv", token)) as resp:
        reader = io.TextIOWrapper(resp, encoding="utf-8", newline="")
        while chunk := reader.read(1 << 16):  # streamed through, never held whole
            out.write(chunk)
            lines += chunk.count("\n")
    return max(0, lines - 1)


def cmd_export(args: argparse.Namespace, db: Path) -> int:
    target = Path(args.output) if args.output and args.output != "-" else None
    if target is None:
        if args.url:
            export_from_api(args.url, args.uuid, args.token, sys.stdout)
        else:
            export_from_file(db, args.uuid, sys.stdout)
        sys.stdout.flush()
        return 0
    partial = target.with_name(target.name + ".partial")  # no half file under the name
    if not target.parent.is_dir():
        raise CommandError(f"the folder {target.parent} does not exist (create it first: "
                           f"mkdir -p {target.parent})")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as stream:
            if args.url:
                count = export_from_api(args.url, args.uuid, args.token, stream)
            else:
                count = export_from_file(db, args.uuid, stream)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    print(f"wrote {count:,} rows to {target}", file=sys.stderr)
    return 0


# --- backup --------------------------------------------------------------------------


def backup(db: Path, dest: Path, force: bool = False) -> tuple[int, float]:
    """Copy a consistent snapshot of a live database with SQLite's online backup API."""
    if dest.exists() and not force:
        raise CommandError(f"{dest} exists; choose another name or pass --force")
    if dest.resolve() == db.resolve():
        raise CommandError("the backup must not overwrite the database itself")
    folder = dest.parent
    if not folder.is_dir():
        raise CommandError(f"the folder {folder} does not exist (create it first: "
                           f"mkdir -p {folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"cannot write in the folder {folder} (run as a user who may, "
                           "e.g. with sudo)")
    source = open_readonly(db)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        target = sqlite3.connect(partial)
        try:
            # One step (pages=-1): a single read transaction, so WAL writers go on and the
            # copy is one consistent point in time, never restarted by their commits.
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
            check = target.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CommandError(f"the copy failed its integrity check: {check}")
        finally:
            target.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"cannot write the backup {dest}: {exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    os.replace(partial, dest)
    return dest.stat().st_size, time.perf_counter() - started


def cmd_backup(args: argparse.Namespace, db: Path) -> int:
    size, seconds = backup(db, Path(args.dest), args.force)
    print(f"backed up {db} to {args.dest} ({size:,} bytes, {seconds:.2f} s, integrity ok)")
    return 0

