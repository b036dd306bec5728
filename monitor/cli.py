"""The `monitor` command: run the daemon, check a config, migrate the database, import inventory.

Exit codes: 0 success, 1 a runtime failure (database, port), 2 invalid input (config, CSV, usage).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine
from tqdm import tqdm

from monitor import __version__, demo, importer, store
from monitor.api_process import run_api
from monitor.app import load_checked_profiles, password_cipher, run_daemon
from monitor.config import Settings, load_settings
from monitor.core.access import Role, role_problem
from monitor.emulator.fleet import DEFAULT_MIX, parse_mix
from monitor.errors import ImportRejected, InvalidInput, MonitorError, Problem
from monitor.logs import configure_logging
from monitor.store.access import AccessStore
from monitor.units import HostPort, parse_host_port

EXIT_FAILURE = 1
EXIT_INVALID = 2
GIL_SWITCH_SECONDS = 0.0005  # CPython's default is 0.005
# CPython's defaults (700, 10, 10) collect the youngest generation every 700 net allocations of
# tracked objects, so at 333 polls a second whatever outlives ~0.1 s (a poll in flight, a
# result queued for its 0.5 s batch) reaches the oldest generation, and a full collection,
# which walks every tracked object (seconds at 100k routers), comes whenever those arrivals
# reach a quarter of it: 30 full collections, 92 s of pauses, in a 300 s window at 100k. With
# a larger youngest generation such objects die young (docs/performance.md has the figures).
GC_THRESHOLDS = (20_000, 10, 10)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `monitor` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except InvalidInput as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_INVALID
    except MonitorError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", description="Monitor the programme's 4G routers and devices."
    )
    parser.add_argument("--version", action="version", version=f"router-monitor {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", _run, "run the daemon until Ctrl-C or SIGTERM")
    _config_option(run)

    api = command(
        "api",
        _api,
        "serve the status API from the database in a process of its own (large fleets: "
        "docs/api.md), until Ctrl-C or SIGTERM",
    )
    _config_option(api)
    api.add_argument(
        "--listen", type=_host_port, default=None, metavar="HOST:PORT",
        help="where to listen (default: the config's http.api_listen, 127.0.0.1:8081)",
    )  # fmt: skip

    demo_run = command("demo", _demo, "run the daemon against an emulated fleet on loopback")
    _config_option(demo_run)
    demo_run.add_argument("--routers", type=_count, default=50, help="fleet size (default 50)")
    demo_run.add_argument("--seed", type=int, default=1, help="the fleet's random seed")
    demo_run.add_argument(
        "--real-pace",
        action="store_true",
        help="keep the config's health and alert durations (default: alerts within a minute)",
    )

    emulate = command("emulate", _emulate, "serve an emulated fleet on loopback until Ctrl-C")
    emulate.add_argument("--routers", type=_count, default=50, help="fleet size (default 50)")
    emulate.add_argument(
        "--mix", type=_mix, default=None,
        help="models and weights, e.g. teltonika-rutos7=3,huawei-hilink=2 (default: a mix of all)",
    )  # fmt: skip
    emulate.add_argument(
        "--organisation", action="append", default=None, metavar="ID",
        help="owner of the routers (repeat to spread them; default emulated-la)",
    )  # fmt: skip
    emulate.add_argument("--seed", type=int, default=1, help="the fleet's random seed")
    for option, what in (("--write-config", "a `routers:` config fragment"),
                         ("--write-csv", "a `monitor import devices` CSV file")):  # fmt: skip
        emulate.add_argument(option, type=Path, metavar="FILE", help=f"write the routers as {what}")

    check = command("check-config", _check_config, "validate a config file; exit 2 if it is bad")
    check.add_argument("path", type=Path, help="the YAML config file")

    db = command("db", lambda _: 0, "database schema").add_subparsers(
        required=True, metavar="ACTION"
    )
    for name, handler, text in (
        ("upgrade", _db_upgrade, "apply every pending migration"),
        ("current", _db_current, "print the schema revision and the newest one"),
    ):
        sub = db.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        _config_option(sub)

    imports = command("import", lambda _: 0, "import inventory from CSV").add_subparsers(
        required=True, metavar="WHAT"
    )
    for name, function in (
        ("organisations", importer.import_organisations),
        ("devices", importer.import_devices),
    ):
        text = f"create or update {name} from a CSV file (all or nothing; see the README)"
        sub = imports.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=_importer(function))
        sub.add_argument("file", type=Path, help="the CSV file, UTF-8, with a header row")
        _config_option(sub)
    text = "store Windows devices' BIOS and local admin passwords, encrypted (docs/api.md)"
    sub = imports.add_parser("passwords", help=text, description=text)
    sub.set_defaults(handler=_import_passwords)
    sub.add_argument("file", type=Path, help="CSV: serial,bios_password,admin_password")
    _config_option(sub)
    _token_commands(command("token", lambda _: 0, "status API bearer tokens"))
    return parser


def _token_commands(group: argparse.ArgumentParser) -> None:
    actions = group.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token and print it (shown only once)")
    create.set_defaults(handler=_token_create)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--organisation", metavar="ID", help="its organisation (not: programme)")
    create.add_argument("--name", help="who holds it, for the audit (default: role and org)")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.set_defaults(handler=_token_list)
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.set_defaults(handler=_token_revoke)
    revoke.add_argument("token_id", help="the id `monitor token list` shows")
    for sub in (create, listing, revoke):
        _config_option(sub)


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("MONITOR_CONFIG"),
        help="YAML config file (default: $MONITOR_CONFIG, else built-in defaults)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, os.environ)
    configure_logging(settings.log.level, settings.log.format)
    return settings


def _tune_gc() -> None:
    """Collect the youngest generation less often (`GC_THRESHOLDS`); process-wide, so for the
    long-running processes only (`run`, `api`)."""
    gc.set_threshold(*GC_THRESHOLDS)


def _run(args: argparse.Namespace) -> int:
    _tune_gc()
    # Database calls run on worker threads and hand the GIL back and forth with the event loop
    # once per row fetched; at CPython's default 5 ms switch interval a 100-row page waited up
    # to half a second for a busy loop, the API's threads all queued behind such waits, and
    # status API answers took seconds during polling (docs/performance.md). Set here, for the
    # daemon's process only (it is process-wide).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # uvloop (libuv) where it exists, the standard loop elsewhere: polling is mostly event-loop
    # work (timers, sockets, task switches).
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        # No reference kept here: run_daemon lets go of the config's routers once loaded.
        runner.run(run_daemon(_settings(args)))
    return 0


def _api(args: argparse.Namespace) -> int:
    _tune_gc()
    # As for `run` where database calls run on threads (PostgreSQL; writes on SQLite too).
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        # No reference kept here: run_api lets go of the config's routers (never read there).
        runner.run(run_api(_settings(args), args.listen))
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop  # optional: not built for every platform
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _demo(args: argparse.Namespace) -> int:
    asyncio.run(demo.run_demo(_settings(args), args.routers, args.seed, args.real_pace))
    return 0


def _emulate(args: argparse.Namespace) -> int:
    configure_logging("info", "text")
    outputs = [demo.open_output(args.write_config), demo.open_output(args.write_csv)]
    try:
        asyncio.run(
            demo.run_emulator(
                args.routers,
                args.organisation or [demo.DEMO_ORGANISATION.id],
                args.mix or DEFAULT_MIX,
                args.seed,
                *outputs,
            )
        )
    finally:
        for output in outputs:
            if output is not None:
                output.close()
    return 0


def _count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 200_000:
        raise argparse.ArgumentTypeError("must be a number of routers from 1 to 200000")
    return int(text)


def _host_port(text: str) -> HostPort:
    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mix(text: str) -> dict[str, int]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.path, os.environ)
    load_checked_profiles(settings)
    print(
        f"{args.path}: OK ({len(settings.organisations)} organisations, "
        f"{len(settings.routers)} routers; database {settings.database.url.partition(':')[0]}, "
        f"listening on {settings.http.listen})"
    )
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    engine = store.open_database(_settings(args).database.url)
    try:
        store.upgrade(engine)
        current, _ = store.schema_status(engine)
    finally:
        engine.dispose()
    print(f"database schema at revision {current}")
    return 0


def _db_current(args: argparse.Namespace) -> int:
    engine = store.open_database(_settings(args).database.url)
    try:
        current, head = store.schema_status(engine)
    finally:
        engine.dispose()
    state = "up to date" if current == head else "needs `monitor db upgrade`"
    print(f"database schema at revision {current or '(empty)'}; newest {head}: {state}")
    return 0 if current == head else EXIT_FAILURE


ImportFunction = Callable[..., store.UpsertResult]


def _importer(function: ImportFunction) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        settings = _settings(args)
        try:
            stream = args.file.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            print(f"monitor: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_INVALID
        engine = store.open_database(settings.database.url)
        try:
            store.upgrade(engine)
            with stream, _Progress(stream, args.file) as progress:
                result = function(
                    stream,
                    store.Inventory(engine),
                    source=str(args.file),
                    progress=progress,
                )
        finally:
            engine.dispose()
        print(f"{args.file}: {result}")
        return 0

    return handler


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[Engine]:
    engine = store.open_database(_settings(args).database.url)
    try:
        store.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def _token_create(args: argparse.Namespace) -> int:
    role = Role(args.role)
    with _database(args) as engine:
        kind = None
        if args.organisation is not None:
            kind = store.Inventory(engine).get_organisation(args.organisation).kind
        if problem := role_problem(role, kind):
            raise InvalidInput("monitor token create", [Problem("--role", problem)])
        name = args.name or f"{role.value} of {args.organisation or 'the programme'}"
        record, secret = AccessStore(engine).create_token(name, role.value, args.organisation)
    print(f"token {record.id} ({name}) created; it is shown only now:", file=sys.stderr)
    print(secret)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    with _database(args) as engine:
        tokens = AccessStore(engine).list_tokens()
    for token in tokens:
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "valid"
        print(
            f"{token.id}  {token.role:<24} {token.organisation_id or '-':<20} {state:<24} "
            f"{token.name}"
        )
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    with _database(args) as engine:
        done = AccessStore(engine).revoke_token(args.token_id)
    if not done:
        print(f"monitor: no valid token {args.token_id!r}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"token {args.token_id} revoked")
    return 0


PASSWORD_COLUMNS = ("serial", "bios_password", "admin_password")


def _import_passwords(args: argparse.Namespace) -> int:
    cipher = password_cipher(os.environ)
    if cipher is None:
        print("monitor: set MONITOR_PASSWORD_KEY or MONITOR_PASSWORD_KEY_FILE", file=sys.stderr)
        return EXIT_INVALID
    try:
        with args.file.open(encoding="utf-8-sig", newline="") as stream:
            items, lines, problems = _password_rows(stream)
    except OSError as exc:
        print(f"monitor: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    source = str(args.file)
    if problems:
        raise ImportRejected(source, problems)
    with _database(args) as engine:
        access = AccessStore(engine)
        unknown = access.not_windows([serial for serial, _, _ in items])
        if unknown:
            reason = "no Windows laptop or tablet with this serial in the inventory"
            raise ImportRejected(
                source, [Problem(f"line {lines[s]}, column serial", reason) for s in unknown]
            )
        result = access.store_passwords(items, cipher)
    print(f"{args.file}: {result.created} stored, {result.updated} replaced")
    return 0


def _password_rows(
    stream: TextIO,
) -> tuple[list[tuple[str, str, str]], dict[str, int], list[Problem]]:
    """The rows of a passwords CSV file; the problems never quote a password."""
    reader = csv.DictReader(stream)
    missing = [c for c in PASSWORD_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        return [], {}, [Problem("line 1", f"missing columns: {', '.join(missing)}")]
    items: list[tuple[str, str, str]] = []
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    for line, row in enumerate(reader, start=2):
        serial = (row.get("serial") or "").strip()
        if not serial:
            problems.append(Problem(f"line {line}, column serial", "is empty"))
            continue
        if serial in lines:
            problems.append(Problem(f"line {line}, column serial", f"is on line {lines[serial]}"))
            continue
        lines[serial] = line
        bios, admin = row.get("bios_password") or "", row.get("admin_password") or ""
        for column, value in (("bios_password", bios), ("admin_password", admin)):
            if not value or len(value) > 200:
                problems.append(Problem(f"line {line}, column {column}", "must be 1-200 chars"))
        items.append((serial, bios, admin))
    return items, lines, problems


class _Progress:
    """A progress bar on stderr for files large enough to wait on (none when not a terminal)."""

    def __init__(self, stream: TextIO, path: Path) -> None:
        rows = sum(1 for _ in stream) - 1
        stream.seek(0)
        self._bar = tqdm(
            total=max(rows, 0),
            unit=" rows",
            desc=path.name,
            disable=None if rows >= 1000 else True,
            file=sys.stderr,
        )
        self._done = 0

    def __enter__(self) -> Callable[[int], None]:
        return self._advance

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def _advance(self, done: int) -> None:
        self._bar.update(done - self._done)
        self._done = done
