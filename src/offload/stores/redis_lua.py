"""offload's Lua for the Redis store (``stores/lua/*.lua``), assembled the two ways it is run: as one Redis
Functions library (Redis 7.0+: the ``common.lua`` helpers defined once, each script a function) and as scripts
for EVALSHA (Redis 6.2, or where FUNCTION LOAD is refused: each script preceded by the helpers it uses). The
store's module docstring tells how and when each is used."""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence

#: The job hash fields a script returns for a job, in order, after the id (the row the Python side decodes).
#: ``spec`` is the JSON array of the fields that never change once a job is stored (see ``RedisStore._spec_text``);
#: ``max_attempts`` is in it too, but a retry that asks for another budget changes the hash field, which wins.
ROW_FIELDS = (
    "spec", "payload", "state", "enqueued_at", "run_at", "started_at", "ended_at", "attempts", "result", "error",
    "errors", "worker", "lease_until", "lease_token", "progress", "meta", "max_attempts", "priority", "limit_key",
)

SCRIPT_FILES = ("enqueue", "periodic", "claim", "settle", "extend", "requeue", "cancel", "retry_now", "clear",
                "purge", "select", "fetch", "delete", "progress", "workers", "front", "pause", "resume", "waiting",
                "reap", "limit")


def _lua_words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", re.sub(r"--[^\n]*", "", text)))


def _prelude(body: str, blocks: Sequence[tuple[set[str], str]]) -> str:
    """The helper blocks ``body`` uses, directly or through other blocks, in their original order."""
    wanted = _lua_words(body)
    used = [False] * len(blocks)
    grew = True
    while grew:
        grew = False
        for i, (names, text) in enumerate(blocks):
            if not used[i] and names & wanted:
                used[i] = grew = True
                wanted |= _lua_words(text)
    return "\n\n".join(text for (_, text), keep in zip(blocks, used, strict=True) if keep)


#: The names the first block of common.lua sets from the call; the library declares them and each function
#: assigns them (with ``KEYS`` and ``ARGV``) when called.
_PER_CALL = {"B", "null"}
#: Function flags where Redis's default for functions (may write, refused while the server is out of memory)
#: would differ from how the EVAL scripts fare: the read-only ones, and the ones that drain or remove jobs, which
#: an EVAL script may run out of memory (its first write is one Redis allows then), so that workers and
#: operators can still empty a full server.
_FLAGS = {"fetch": "no-writes", "select": "no-writes", "waiting": "no-writes", "claim": "allow-oom",
          "settle": "allow-oom", "cancel": "allow-oom", "delete": "allow-oom", "purge": "allow-oom",
          "clear": "allow-oom"}


class Lua:
    """offload's Lua, both ways it is run: ``scripts`` (name -> sha1 and source, each script preceded by the
    common.lua blocks it needs, for EVALSHA) and ``library`` (one Redis Functions library defining every block
    once; ``functions`` maps each name to its function). The library and function names carry a hash of the
    library, so offload versions that share a server never call each other's functions."""

    def __init__(self) -> None:
        rows = f"local ROW_FIELDS = {{{', '.join(repr(f) for f in ROW_FIELDS)}}}"
        common = _read("common")
        blocks: list[tuple[set[str], str]] = [({"ROW_FIELDS"}, rows)]
        for text in re.split(r"\n\s*\n", common):
            names = set(re.findall(r"^local function (\w+)", text, re.M))
            for match in re.finditer(r"^local ([\w, ]+?)\s*=", text, re.M):
                names.update(name.strip() for name in match.group(1).split(","))
            if names:
                blocks.append((names, text))
        if sum(names == _PER_CALL for names, _ in blocks) != 1:
            raise RuntimeError(f"common.lua must set {sorted(_PER_CALL)} in one block of their own")
        bodies = {name: _read(name) for name in SCRIPT_FILES}
        self._blocks, self._bodies = blocks, bodies
        self._scripts: dict[str, tuple[str, str]] | None = None

        parts = ["#!lua name=@LIB@", "local KEYS, ARGV, B, null"]
        parts += [text for names, text in blocks if names != _PER_CALL]
        for name, body in bodies.items():
            flags = f"{{'{_FLAGS[name]}'}}" if name in _FLAGS else "{}"
            parts.append(
                f"-- {name}.lua\n"
                f"redis.register_function{{function_name = '@LIB@_{name}', flags = {flags}, "
                "callback = function(keys, args)\n"
                "KEYS, ARGV, B, null = keys, args, keys[1], cjson.null\n"
                f"forget()\n{body}\nend}}"
            )
        template = "\n\n".join(parts)
        # A name, not a security check: two 32-bit checksums (zlib loads in well under a millisecond; hashlib's
        # OpenSSL takes ~5, on the start-up path of every process that opens a Redis store).
        text = template.encode()
        self.library_name = f"offload_{zlib.crc32(text):08x}{zlib.adler32(text):08x}"
        self.library = template.replace("@LIB@", self.library_name)
        self.functions = {name: f"{self.library_name}_{name}" for name in bodies}

    @property
    def scripts(self) -> dict[str, tuple[str, str]]:
        """name -> (sha1, source) of each script for EVALSHA; assembled on first use (only where Redis Functions
        are missing or refused)."""
        if self._scripts is None:
            import hashlib

            self._scripts = {}
            for name, body in self._bodies.items():
                source = f"{_prelude(body, self._blocks)}\n\n-- {name}.lua\n{body}"
                self._scripts[name] = (hashlib.sha1(source.encode()).hexdigest(), source)
        return self._scripts


def _read(name: str) -> str:
    """The text of ``lua/<name>.lua``, beside this module. A plain read: the package is always installed as
    files (``importlib.resources`` would add ~10 ms of imports to every process that opens a Redis store)."""
    with open(os.path.join(os.path.dirname(__file__), "lua", f"{name}.lua"), encoding="utf-8") as f:
        return f.read()


_lua: Lua | None = None


def lua() -> Lua:
    """This offload's Lua, read and assembled once per process."""
    global _lua
    if _lua is None:
        _lua = Lua()
    return _lua
