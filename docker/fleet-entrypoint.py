"""Start `monitor run` in the Compose stack with the emulated fleet's routers added to its config.

The `fleet` service (`monitor emulate --write-config FRAGMENT`) picks free ports, so its routers
are only known once it runs: wait (bounded) for its complete `routers:` fragment, write the base
config plus those routers to a private file, and replace this process with the daemon.

    python fleet-entrypoint.py BASE_CONFIG FRAGMENT [EXPECTED_ROUTERS]
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

WAIT_SECONDS = 120


def read_routers(fragment: Path, expected: int) -> list[dict[str, object]] | None:
    """The fragment's routers once it is whole (all `expected` of them), else None."""
    try:
        routers = (yaml.safe_load(fragment.read_text(encoding="utf-8")) or {}).get("routers")
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(routers, list) or len(routers) < max(expected, 1):
        return None
    return routers


def main(argv: list[str]) -> int:
    """Merge and exec; exit 1 with a message if the fragment never appears."""
    base, fragment = Path(argv[1]), Path(argv[2])
    expected = int(argv[3]) if len(argv) > 3 else 1
    deadline = time.monotonic() + WAIT_SECONDS
    while (routers := read_routers(fragment, expected)) is None:
        if time.monotonic() > deadline:
            print(f"no complete fleet at {fragment} after {WAIT_SECONDS}s", file=sys.stderr)
            return 1
        time.sleep(1)
    config = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    config["routers"] = [*(config.get("routers") or []), *routers]
    # The fragment holds the emulated routers' credentials: keep the merged file private (in
    # $TMPDIR or /tmp, a tmpfs in the stack).
    handle, path = tempfile.mkstemp(prefix="monitor-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        yaml.safe_dump(config, out, sort_keys=False)
    print(f"{len(routers)} emulated routers added to {base}", file=sys.stderr, flush=True)
    # exec, not a child: the daemon becomes the container's main process and gets its signals.
    command = [sys.executable, "-m", "monitor", "run", "--config", path]
    os.execv(command[0], command)  # noqa: S606 - a fixed command, no shell
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
