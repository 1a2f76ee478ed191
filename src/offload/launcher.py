"""The ``offload`` command's entry point.

For ``offload worker`` it forks the executor processes first thing, while this process is still one thread
holding no connection, before the command line, the configuration and the store's driver are loaded (see
``offload.worker.spawn``): they are ready at once and idle on their own core while the supervisor sets up,
instead of each booting an interpreter that competes with it (worker start-up matters on every deploy and
restart, and for a worker started per batch). The number forked is what the command line asks for
(``--concurrency``/``-n``, else 1); the worker spawns more, or stops the surplus, once it knows the real figure.
Everything else goes straight to ``offload.cli``.
"""

from __future__ import annotations

import sys

# Options of the ``offload`` group that take a value (the worker command comes after them).
_GROUP_VALUE_OPTIONS = ("-c", "--config", "--store", "--site-id")


def executors_wanted(argv: list[str]) -> int:
    """How many executors ``argv`` (without the program name) asks a worker for; 0 if it is not a worker run
    (another command, help, version, or something this quick reading cannot tell)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in _GROUP_VALUE_OPTIONS:
            i += 2
        elif "=" in argv[i] and argv[i].split("=", 1)[0] in _GROUP_VALUE_OPTIONS:
            i += 1
        else:
            return 0  # --help, --version or an option this does not know
    if i >= len(argv) or argv[i] != "worker":
        return 0
    rest = argv[i + 1:]
    if any(arg in ("-h", "--help") for arg in rest):
        return 0
    count = "1"
    for j, arg in enumerate(rest):
        if arg in ("-n", "--concurrency") and j + 1 < len(rest):
            count = rest[j + 1]
        elif arg.startswith("--concurrency="):
            count = arg.split("=", 1)[1]
        elif arg.startswith("-n") and len(arg) > 2 and not arg.startswith("--"):
            count = arg[2:]
    return int(count) if count.isdigit() and 1 <= int(count) <= 512 else 0


def main() -> None:
    wanted = executors_wanted(sys.argv[1:])
    if wanted:
        from offload.worker.spawn import prestart

        prestart(wanted)
    from offload.cli import main as cli

    cli()
