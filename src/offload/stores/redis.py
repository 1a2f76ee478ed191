"""The Redis engine: ``redis://[:password@]host:6379/0``, ``rediss://`` (TLS), ``unix:///path.sock?db=0`` and
``redis+sentinel://host:26379,host:26380/<service>/<db>`` and ``redis+cluster://host:port[,host:port...]`` (the
URL forms and their options: ``redis_link.py``); needs Redis 6.2 or later, with ``maxmemory-policy noeviction``
(the default): an evicted key would leave the indexes below inconsistent. What survives a server crash is what the
server's persistence settings keep; what a Sentinel failover can lose is told in docs/stores.md (``min_replicas``
narrows it).

Query options read here: ``prefix`` (key prefix, default ``offload``) and ``min_replicas`` (each write is
followed, in the same round trip, by ``WAIT <n> 1000``; fewer replicas acknowledging it is StoreUnavailable).

Data layout. Every key of a site starts with ``B = <prefix>:{<site_id>}:`` (the braces make the site a Redis
Cluster hash tag, so one site lives in one slot); queues are stored as ``<site_id>:<queue>`` (``Q`` below):

    B j:<id>           HASH   one job: ``spec``, the JSON array of what is fixed at enqueue (queue, func, task,
                              payload, title, created_at, max_attempts, retry, timeout, unique_key), which the
                              scripts hand back unread; the fields that change (state, attempts, enqueued_at,
                              run_at, started_at, ended_at, result, error, errors, worker, lease_until,
                              lease_token, progress, meta; JSON as text, times as the caller's float text); and
                              the copies the scripts need (queue as Q, created_at, max_attempts, unique_key) plus
                              ``seq``, a 15-digit insertion number
    B q:<Q>            LIST   ids of the queued jobs of a queue, claimed from the head (LPOP); new, promoted,
                              requeued and retried jobs join the tail, released ones go back to the head. One
                              list per priority: q:<Q> holds priority 0 (and every job of data written before
                              priorities), q:<Q>#<p> priority p (1-9), claimed after q:<Q>; ``priority`` is in
                              a job hash only when not 0, so schema 1 data reads as it is
    B s:<Q>:<state>    ZSET   the jobs of a queue in a state (every state but started) by created_at, members
                              ``<seq>:<id>`` so ties keep insertion order; ``list`` merges the ones it needs
    B lease            ZSET   started job ids by lease_until (``requeue_expired``; lists of started jobs)
    B sched            ZSET   scheduled job ids by run_at (promotion at claim; the waiter's next due time)
    B done             ZSET   finished, failed and canceled job ids by ended_at (``purge``)
    B paused           HASH   ``<Q>`` -> paused_at of each paused queue (claim skips it; it keeps no wake token)
    B limits           HASH   ``<Q>`` -> concurrency limit (claim starts no more; a full queue keeps no wake token),
                              ``<Q>#key`` -> per-key limit
    B kr:<Q>           HASH   limit_key -> started jobs of the queue with that key, while it has a per-key limit
    B counts           HASH   ``<Q>|<state>`` -> jobs, kept by the scripts (zero fields dropped): ``counts``,
                              ``count`` and the set of queues, with no scan of jobs
    B u:<unique_key>   STRING id of the pending job holding a unique key
    B seq              STRING insertion counter (the one job key left once every job is gone)
    B w:<Q>, B w:sched LIST   wake tokens, at most one each (see below)
    B workers, B wseen HASH   worker id -> info JSON; ZSET worker id by last_seen
    B runs             HASH   schedule name -> ``<last slot>|<job id>``
    B rec:<kind>       HASH   record key -> JSON
    <prefix>:schema    STRING schema version (on a Redis Cluster: ``B schema``, in the site's slot)

Every state transition is one Lua script (``stores/lua/*.lua``) run in one round trip whatever the batch size;
index writes are grouped into one command per key and transition. On Redis 7.0+ the scripts and the
``common.lua`` helpers are loaded once as a Redis Functions library and run with FCALL, so the helpers are not
defined again on every call. The library's name carries a hash of its text; opening a store deletes the
libraries of other offload versions (each one loaded costs every call some Lua garbage collection), and a
process still running one of them loads its own again when a call finds it missing. On Redis 6.2, or where
FUNCTION LOAD is refused, each script is prefixed with the helpers it uses and run with EVALSHA. New jobs
travel as "kinds" (the values most jobs of a batch share) and seven values per job; a single new queued job
takes a shorter path of direct commands (``add_queued``). Scripts touch keys derived from ``KEYS[1]`` (the site
base) rather than declaring each one, which standalone Redis allows; with Cluster the hash tag keeps them in one
slot. Times come from the caller (``now`` arguments), never from the server clock, so every engine agrees.
``list`` with filters merges at most ``offset + limit`` entries of each index it needs (the started ones: all of
them).

Waiting for work: a script that puts ids into a queue list also leaves one token in ``w:<Q>`` (and a claim
that leaves work behind leaves it again, so several idle workers wake in turn); a script that empties the list
drops the token. An idle worker checks for queued or due work and otherwise BLPOPs the tokens of its queues
plus ``w:sched`` (set when the earliest due time moves earlier), bounded by the next due time.

Commands are packed by this module and sent on redis-py connections (``redis_link.py``: TCP, TLS, unix socket or
the master Sentinel names, replies read by hiredis) in one round trip per call. No command is ever resent after it
may have run: a connection the server closed is noticed before use and reopened. Connection failures, READONLY (a
replica) and the like are StoreUnavailable, which the worker retries with backoff; a Sentinel connection asks the
sentinels for the master each time it connects.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from redis.exceptions import AskError, NoScriptError, RedisError, ResponseError

from offload import codec
from offload.errors import StoreError, StoreUnavailable, StoreURLError
from offload.jobs import QUEUED, Job, Outcome, ScheduleRun, WorkerInfo
from offload.stores.base import Store, mark_stored
from offload.stores.redis_link import DOWN, ClusterLink, Link, error_text, parse_url
from offload.stores.redis_lua import lua

SCHEMA_VERSION = 1

#: Due scheduled jobs promoted per claim at most, so a backlog never stalls the server in one script.
PROMOTE_BATCH = 1000
#: Longest single BLPOP; a wait of any length is a loop of these.
MAX_BLOCK = 60.0

#: How long a write waits for ``min_replicas`` replicas to acknowledge it (WAIT), in milliseconds.
WAIT_MS = 1000
#: The scripts that only read, and the plain commands that write (``_call``).
_READS = frozenset({"fetch", "select"})
_WRITES = frozenset({"HSET", "HDEL"})

#: RESP bulk string headers by length, for almost every argument.
_HEADS = [f"${n}\r\n" for n in range(1024)]


def _pack(commands: Sequence[Sequence[str]]) -> bytes:
    """RESP encoding of a pipeline of commands, built as text and encoded once. Lengths are counted in
    characters, which is the byte count unless an argument has a character of more than one byte: the encoded
    text is then longer than the text, and the commands are packed again by ``_pack_measured``."""
    parts: list[str] = []
    for args in commands:
        n = len(args)
        items = ["\r\n"] * (3 * n)  # header, argument, CRLF
        try:
            items[0::3] = map(_HEADS.__getitem__, map(len, args))
        except IndexError:  # a long argument
            items[0::3] = [f"${len(arg)}\r\n" for arg in args]
        items[1::3] = args
        parts.append(f"*{n}\r\n")
        parts += items
    text = "".join(parts)
    data = text.encode("utf-8", "surrogateescape")
    return data if len(data) == len(text) else _pack_measured(commands)


def _pack_measured(commands: Sequence[Sequence[str]]) -> bytes:
    """``_pack`` for commands with non-ASCII text: each argument is measured encoded."""
    parts: list[str] = []
    for args in commands:
        parts.append(f"*{len(args)}\r\n")
        parts += [f"${len(arg.encode('utf-8', 'surrogateescape'))}\r\n{arg}\r\n" for arg in args]
    return "".join(parts).encode("utf-8", "surrogateescape")


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _dump(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _spec(text: str) -> builtins.list[Any]:
    """A job's ``spec`` field: the JSON array of 9 values ``RedisStore._spec_text`` writes, or ValueError."""
    spec = json.loads(text)
    if not isinstance(spec, builtins.list) or len(spec) != 9:
        raise ValueError("not the 9-value JSON array offload writes")
    return spec


def _not_loaded(reply: ResponseError) -> bool:
    """Whether an error says the server lacks the script or function called (so nothing ran)."""
    if isinstance(reply, NoScriptError):
        return True
    text = str(reply)
    return text.startswith("Function not found") or text.lower().startswith("unknown command 'fcall'")


class RedisStore(Store):
    scheme = "redis"
    #: Run the scripts as Redis Functions where the server has them (7.0+); False always uses EVALSHA, as on
    #: Redis 6.2 (the tests force that path this way).
    use_functions: ClassVar[bool] = True

    def __init__(self, url: str, site_id: str = "default") -> None:
        super().__init__(url, site_id)
        target = parse_url(url, self.safe_url)
        self.key_prefix = target.options.get("prefix", "offload")
        if not self.key_prefix or any(c in self.key_prefix for c in "{}"):
            raise StoreURLError(f"invalid Redis URL {self.safe_url!r}: prefix must be non-empty, without braces")
        self._password = target.password
        self.min_replicas = int(target.options.get("min_replicas", "0"))
        self.base = f"{self.key_prefix}:{{{site_id}}}:"
        if target.kind == "cluster":
            # In the site's hash tag, so that every key a call touches lives in one slot. One server keeps the
            # key it always had (data written before stays readable).
            self._schema_key = self.base + "schema"
            self._link: Link = ClusterLink(target, self.base)
        else:
            self._schema_key = f"{self.key_prefix}:schema"
            self._link = Link(target)
        self._lua = lua()
        # Whether scripts run as Redis Functions; settled by _load() (open(), or a call that finds them missing).
        self._functions = self.use_functions
        self._spec_around: dict[tuple[Any, ...], tuple[str, str]] = {}

    # -- connections -------------------------------------------------------------------------------------
    @property
    def _generation(self) -> int:
        return self._link.generation

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        reason = error_text(exc)
        if self._password:
            reason = reason.replace(self._password, "***")
        return StoreUnavailable(f"Redis store {self.safe_url} is unavailable ({self._link.where()}): {reason}")

    def _reply_text(self, reply: BaseException) -> str:
        """An error reply as one line; a redirection, which only a cluster node sends, says what to do."""
        text = error_text(reply)
        if isinstance(reply, AskError) and not isinstance(self._link, ClusterLink):
            text += "; the server is a Redis Cluster node: name the cluster with redis+cluster://host:port"
        return text

    def _exchange(self, commands: Sequence[Sequence[str]], read_timeout: float | None = None,
                  acknowledged: bool = False) -> list[Any]:
        """Send commands in one round trip and return their replies (an error reply is returned, not raised, so
        every reply is read and the connection stays in step). ``acknowledged``: with ``min_replicas``, a WAIT
        follows them, and fewer replicas than that having the writes is StoreUnavailable."""
        wait = acknowledged and self.min_replicas > 0
        if wait:
            commands = [*commands, ("WAIT", str(self.min_replicas), str(WAIT_MS))]
        try:
            replies = self._link.exchange(_pack(commands), len(commands), read_timeout)
        except DOWN as exc:
            raise self._unavailable(exc) from None
        except RedisError as exc:  # the session's setup refused (SELECT of a database the server lacks)
            raise StoreError(f"Redis store {self.safe_url} ({self._link.where()}) refused the connection: "
                             f"{error_text(exc)}") from None
        if wait:
            replicas = replies.pop()
            if not isinstance(replicas, int) or replicas < self.min_replicas:
                raise StoreUnavailable(
                    f"Redis store {self.safe_url} ({self._link.where()}) made the change but only {replicas} "
                    f"replica(s) of the {self.min_replicas} asked for (min_replicas) acknowledged it within "
                    f"{WAIT_MS} ms"
                )
        return replies

    def _call(self, *args: str) -> Any:
        reply = self._exchange([args], acknowledged=args[0] in _WRITES)[0]
        if isinstance(reply, ResponseError):
            raise StoreError(f"Redis store {self.safe_url} refused {args[0]!r}: {self._reply_text(reply)}")
        return reply

    def _command(self, name: str, args: Sequence[str]) -> tuple[str, ...]:
        if self._functions:
            return ("FCALL", self._lua.functions[name], "1", self.base, *args)
        return ("EVALSHA", self._lua.scripts[name][0], "1", self.base, *args)

    def _run(self, name: str, *args: str) -> Any:
        """Run script ``name`` with the site base as KEYS[1]."""
        acknowledged = name not in _READS
        reply = self._exchange([self._command(name, args)], acknowledged=acknowledged)[0]
        if isinstance(reply, ResponseError) and _not_loaded(reply):
            # First use on this server, or it lost our Lua (restarted without persistence, flushed); the call
            # did not run, so it is safe to make again.
            self._load()
            reply = self._exchange([self._command(name, args)], acknowledged=acknowledged)[0]
        if isinstance(reply, ResponseError):
            raise StoreError(f"Redis store {self.safe_url} failed in script {name!r}: {self._reply_text(reply)}")
        return reply

    def _load(self, tidy: bool = False) -> None:
        """Put offload's Lua on the server: the Functions library where the server has Redis Functions (7.0+)
        and lets us load it, else the scripts, for EVALSHA (Redis 6.2). ``tidy`` also deletes the libraries of
        other offload versions: every library costs each call some of the server's Lua garbage collection, and
        a process still running another version loads its own again when it next finds it missing."""
        if self.use_functions:
            reply, listed = self._exchange([("FUNCTION", "LOAD", self._lua.library),
                                            ("FUNCTION", "LIST", "LIBRARYNAME", "offload_*")])
            # The library's name is a hash of its text: one already there is this very library.
            if not isinstance(reply, ResponseError) or "already exists" in str(reply):
                self._functions = True
                if tidy and not isinstance(listed, ResponseError):
                    names = {str(library[1]) for library in listed} - {self._lua.library_name}
                    stale = [name for name in names if re.fullmatch(r"offload_[0-9a-f]{16}", name)]
                    if stale:  # an error means another process deleted it first
                        self._exchange([("FUNCTION", "DELETE", name) for name in stale])
                return
        replies = self._exchange([("SCRIPT", "LOAD", source) for _, source in self._lua.scripts.values()])
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise StoreError(f"Redis store {self.safe_url} refused offload's scripts: {self._reply_text(reply)}")
        self._functions = False

    # -- lifecycle ---------------------------------------------------------------------------------------
    def open(self) -> None:
        self.migrate()
        self._load(tidy=True)

    def close(self) -> None:
        self._link.close()

    def migrate(self) -> int:
        _, version = self._exchange([("SET", self._schema_key, str(SCHEMA_VERSION), "NX"),
                                     ("GET", self._schema_key)])
        if isinstance(version, ResponseError):
            raise StoreError(f"Redis store {self.safe_url} ({self._link.where()}) failed to read its schema "
                             f"version: {self._reply_text(version)}")
        if int(version) > SCHEMA_VERSION:
            raise StoreError(
                f"Redis store {self.safe_url} holds schema version {version} (prefix {self.key_prefix!r}), newer "
                f"than this offload understands ({SCHEMA_VERSION}); upgrade offload"
            )
        return int(version)

    def ping(self) -> None:
        self._call("PING")

    # -- rows --------------------------------------------------------------------------------------------
    def _job(self, r: builtins.list[Any]) -> Job:
        """A Job from a script's row: the id, then ``redis_lua.ROW_FIELDS``."""
        try:
            return self._decode(r)
        except (ValueError, TypeError):  # a corrupted or foreign hash must not stop claim, list or requeue
            return self._damaged(r)

    def _damaged(self, r: builtins.list[Any]) -> Job:
        """A row whose fields do not all decode: the rest of it, and ``defect`` saying what is wrong."""
        fixed = list(r)
        problems = []
        checks: builtins.list[tuple[int, str, Callable[[Any], Any]]] = [(1, "spec", _spec)]
        checks += [(i, name, json.loads) for i, name in ((10, "error"), (11, "errors"), (15, "progress"), (16, "meta"))]
        checks += [(i, name, float) for i, name in ((4, "enqueued_at"), (5, "run_at"), (6, "started_at"),
                                                   (7, "ended_at"), (13, "lease_until"))]
        checks.append((8, "attempts", int))
        checks.append((17, "max_attempts", int))
        checks.append((18, "priority", int))
        for index, name, decode in checks:
            try:
                if r[index] is not None:
                    decode(r[index])
            except (ValueError, TypeError, IndexError) as exc:
                problems.append(f"its {name} cannot be decoded ({exc})")
                fixed[index] = {1: "[null,null,null,null,0,1,null,null,null]", 8: "0"}.get(index)
        try:
            job = self._decode(fixed)
        except (ValueError, TypeError):
            job = Job(id=str(r[0]), queue="", lease_token=r[14] if isinstance(r[14], str) else None)
        job.defect = "; ".join(problems) or "its record cannot be decoded"
        return job

    def _decode(self, r: builtins.list[Any]) -> Job:
        (job_id, spec, payload, state, enqueued_at, run_at, started_at, ended_at, attempts, result, error, errors,
         worker, lease_until, lease_token, progress, meta, budget, priority, limit_key) = r
        queue, func, task, title, created_at, max_attempts, retry, timeout, unique_key = json.loads(spec)
        if budget is not None:  # the hash field: a retry may have changed it since the spec was written
            max_attempts = int(budget)
        return Job(
            id=job_id,
            queue=queue,
            func=func,
            task=task,
            payload=payload,
            title=title,
            state=state,
            created_at=created_at,
            enqueued_at=None if enqueued_at is None else float(enqueued_at),
            run_at=None if run_at is None else float(run_at),
            started_at=None if started_at is None else float(started_at),
            ended_at=None if ended_at is None else float(ended_at),
            attempts=int(attempts),
            max_attempts=max_attempts,
            retry=retry,
            timeout=timeout,
            result_json=result,
            error=None if error is None else json.loads(error),
            errors=[] if errors is None else json.loads(errors),
            worker=worker,
            lease_until=None if lease_until is None else float(lease_until),
            lease_token=lease_token,
            progress=None if progress is None else json.loads(progress),
            meta={} if meta is None else json.loads(meta),
            limit_key=limit_key,
            unique_key=unique_key,
            priority=0 if priority is None else int(priority),
        )

    def _jobs(self, reply: str) -> builtins.list[Job]:
        return [self._job(r) for r in json.loads(reply)]

    def _enqueue_args(self, jobs: Sequence[Job], now: str) -> builtins.list[str]:
        """New jobs as ``read_kinds`` (common.lua) reads them: the kinds (the values most jobs of a batch share:
        queue, state, enqueued_at, attempts, max_attempts, meta, priority), then 7 values per job ('' = absent).
        ``spec`` holds what never changes, as one JSON text the scripts hand back unread; the few fields the
        scripts use are also sent apart."""
        kinds: dict[tuple[str, ...], str] = {}
        values: builtins.list[str] = []
        for job in jobs:
            state = job.state
            kind = (
                self.prefix + job.queue, state,
                now if state == QUEUED else "" if job.enqueued_at is None else repr(job.enqueued_at),
                str(job.attempts), str(job.max_attempts), codec.dump_meta(job.meta) if job.meta else "",
                str(job.priority), job.limit_key or "",
            )
            number = kinds.get(kind)
            if number is None:
                number = kinds[kind] = str(len(kinds) + 1)
            created = repr(job.created_at)
            values += (
                number, job.id, created, "" if job.run_at is None else repr(job.run_at),
                "" if job.unique_key is None else "=" + job.unique_key, self._spec_text(job, created), job.payload,
            )
        head = [str(len(kinds))]
        for shared in kinds:
            head += shared
        return head + values

    def _spec_text(self, job: Job, created: str) -> str:
        """``spec``: the JSON array of queue, func, task, title, created_at, max_attempts, retry, timeout and
        unique_key. Jobs that differ only in created_at (most of a batch, and repeated enqueues of a function)
        share the text around it, kept here; the key holds the types that JSON tells apart and == does not."""
        created_at = job.created_at
        if (job.retry is not None or job.unique_key is not None or type(created_at) is not float
                or not math.isfinite(created_at)):
            return _dumps([job.queue, job.func, job.task, job.title, created_at, job.max_attempts, job.retry,
                           job.timeout, job.unique_key])
        key = (job.queue, job.func, job.task, job.title, job.max_attempts, type(job.max_attempts), job.timeout,
               type(job.timeout))
        around = self._spec_around.get(key)
        if around is None:
            if len(self._spec_around) >= 256:
                self._spec_around.clear()
            # A JSON array is its items' texts joined by commas: the two parts, with created_at's place open.
            around = self._spec_around[key] = (
                _dumps([job.queue, job.func, job.task, job.title])[:-1] + ",",
                "," + _dumps([job.max_attempts, None, job.timeout, None])[1:],
            )
        return around[0] + created + around[1]

    # -- producer ----------------------------------------------------------------------------------------
    def enqueue_many(self, jobs: Sequence[Job], now: float) -> builtins.list[Job]:
        if not jobs:
            return []
        dups = self._run("enqueue", *self._enqueue_args(jobs, repr(now)))
        out = [mark_stored(job, now) for job in jobs]
        if dups != "[]":
            for index, r in json.loads(dups):
                existing = self._job(r)
                existing.duplicate = True
                out[index - 1] = existing
        return out

    # -- worker ------------------------------------------------------------------------------------------
    def claim(self, queues: Sequence[str], worker_id: str, lease: float, limit: int, now: float) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        return self._jobs(self._run("claim", *self._claim_args(queues, worker_id, limit, repr(now),
                                                               repr(now + lease))))

    def _claim_args(self, queues: Sequence[str], worker_id: str, limit: int, now: str, lease_until: str
                    ) -> list[str]:
        token_prefix = os.urandom(12).hex() + "-"
        return [now, lease_until, worker_id, token_prefix, str(limit), str(PROMOTE_BATCH),
                *[self.qname(q) for q in queues]]

    def extend_leases(self, worker_id: str, held: dict[str, str], lease: float, now: float) -> list[str]:
        if not held:
            return []
        args = [repr(now + lease)]
        for job_id, token in held.items():
            args += (job_id, token)
        lost: builtins.list[str] = json.loads(self._run("extend", *args))
        return lost

    def settle(self, outcomes: Sequence[Outcome], now: float) -> list[bool]:
        if not outcomes:
            return []
        args: list[str] = []
        for o in outcomes:
            ended = repr(o.ended_at or now)
            if o.kind == "finish":
                has, data, retry_at = ("1", o.result_json, "") if o.result_json is not None else ("", "", "")
            elif o.kind == "release":
                has, data, retry_at = "", "", ""
            elif o.kind == "snooze":
                has, data, retry_at = "", "", repr(o.retry_at if o.retry_at is not None else now)
            else:
                has, data = "1", _dumps(o.error or {})
                retry_at = repr(o.retry_at if o.retry_at is not None else now)
            payload = o.payload if o.kind == "retry" and o.payload is not None else ""
            budget = "" if o.max_attempts is None or o.kind not in ("fail", "retry") else str(int(o.max_attempts))
            args += (o.job_id, o.token, o.kind, has, data, ended, retry_at, payload, budget)
        reply: str = self._run("settle", *args)
        return [c == "1" for c in reply]

    def requeue_expired(self, now: float) -> list[Job]:
        return self._jobs(self._run("requeue", repr(now)))

    def _work_ready(self, queues: Sequence[str]) -> tuple[bool, float | None, str]:
        """Whether a queue that is not paused has work, the earliest due time, and the server's clock (as
        ``<s>.<us>``)."""
        names = [self.qname(q) for q in queues]
        paused, caps, started, head, clock, *queued = replies = self._exchange(
            [("HMGET", self.base + "paused", *names),
             ("HMGET", self.base + "limits", *names, *[f"{n}#key" for n in names]),
             ("HMGET", self.base + "counts", *[f"{n}|started" for n in names]),
             ("ZRANGE", self.base + "sched", "0", "0", "WITHSCORES"), ("TIME",),
             *[("EXISTS", *self._queue_lists(q)) for q in queues]])
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise StoreError(f"Redis store {self.safe_url} failed to look for work: {self._reply_text(reply)}")
        # A queue with a per-key limit counts as no work here: its wake token says when a claim may find some.
        full = [(cap is not None and int(n or 0) >= int(cap)) or keyed is not None
                for cap, keyed, n in zip(caps[:len(names)], caps[len(names):], started, strict=True)]
        ready = any(int(n) > 0 and at is None and not f for n, at, f in zip(queued, paused, full, strict=True))
        return ready, float(head[1]) if head else None, f"{clock[0]}.{int(clock[1]):06d}"

    def _queue_lists(self, queue: str) -> list[str]:
        """The keys of a queue's waiting lists, one per priority, first to last (``pqkey`` in common.lua)."""
        head = f"{self.base}q:{self.qname(queue)}"
        return [head] + [f"{head}#{p}" for p in range(1, 10)]

    def _tokens(self, queues: Sequence[str]) -> list[str]:
        return [f"{self.base}w:{self.qname(q)}" for q in queues] + [self.base + "w:sched"]

    @staticmethod
    def _block(remaining: float, next_due: float | None, now: float) -> tuple[float, str]:
        """How long the next BLPOP may block: seconds, and as BLPOP's argument (whole milliseconds, rounded up,
        at least 1: 0 would mean forever)."""
        block = min(remaining, MAX_BLOCK)
        if next_due is not None:
            block = min(block, next_due - now)
        return block, f"{max(math.ceil(block * 1000), 1) / 1000:.3f}"

    def wait_for_work(self, queues: Sequence[str], timeout: float) -> bool:
        if not queues:
            time.sleep(max(0.0, timeout))
            return False
        return self._wait(queues, timeout, None) is not None

    def wait_and_claim(
        self, queues: Sequence[str], worker_id: str, lease: float, limit: int, timeout: float
    ) -> list[Job] | None:
        """The claim travels with the BLPOP, in one pipeline: the server runs it the moment the BLPOP returns
        (a blocked client's next command waits in its buffer), so a job enqueued while we wait is claimed with no
        round trip after the wake-up. Its time is ours at the BLPOP plus what the server measures in between."""
        if limit <= 0 or not queues:
            return super().wait_and_claim(queues, worker_id, lease, limit, timeout)
        return self._wait(queues, timeout, (worker_id, lease, limit))

    def _wait(self, queues: Sequence[str], timeout: float, claim: tuple[str, float, int] | None
              ) -> list[Job] | None:
        """Look for work, else BLPOP the wake tokens (bounded by the next due time) and look again, until
        ``timeout``: None if nothing came. Without ``claim`` (worker id, lease, limit), [] once work may be there;
        with it, the jobs claimed (the claim sent behind each BLPOP, or made at once if work is there)."""
        deadline = time.monotonic() + timeout
        tokens = self._tokens(queues)
        generation = self._generation
        try:
            while True:
                ready, next_due, clock = self._work_ready(queues)
                now = time.time()
                if ready or (next_due is not None and next_due <= now):
                    return [] if claim is None else self.claim(queues, *claim, time.time())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                block, block_text = self._block(remaining, next_due, now)
                commands: list[Sequence[str]] = [("BLPOP", *tokens, block_text)]
                if claim is not None:
                    worker_id, lease, limit = claim
                    ahead = self._claim_args(queues, worker_id, limit, f"+{now!r}+{clock}+{lease!r}", "")
                    commands.append(self._command("claim", ahead))
                popped, *reply = self._exchange(commands, read_timeout=block + 5.0, acknowledged=claim is not None)
                if isinstance(popped, ResponseError):
                    raise StoreError(f"Redis store {self.safe_url} failed to wait for work: {self._reply_text(popped)}")
                if claim is None:
                    if popped is not None and popped[0] != tokens[-1]:
                        return []
                    continue  # a timeout, or the earliest due time moved: look again
                if not isinstance(reply[0], ResponseError):
                    jobs = self._jobs(reply[0])
                elif _not_loaded(reply[0]):  # the server lost our Lua while we waited: the claim did not run
                    jobs = self.claim(queues, *claim, time.time())
                else:
                    raise StoreError(f"Redis store {self.safe_url} failed in script 'claim': "
                                     f"{self._reply_text(reply[0])}")
                if jobs:
                    return jobs
                # A timeout, the earliest due time moved, or another worker was quicker: look again.
        except StoreUnavailable:
            if self._generation != generation:  # closed under our feet
                return None
            raise

    # -- concurrency limits (limit.lua; HASH B limits: Q -> concurrency) ------------------------------------
    def set_limit(self, queue: str, concurrency: int | None) -> None:
        self._run("limit", self.qname(queue), "" if concurrency is None else str(int(concurrency)), "")

    def limits(self) -> dict[str, int]:
        return {q: n for q, n in self._all_limits().items() if not q.endswith("#key")}

    def set_key_limit(self, queue: str, concurrency: int | None) -> None:
        self._run("limit", self.qname(queue), "" if concurrency is None else str(int(concurrency)), "key")

    def key_limits(self) -> dict[str, int]:
        return {q[:-4]: n for q, n in self._all_limits().items() if q.endswith("#key")}

    def _all_limits(self) -> dict[str, int]:
        """HASH limits: queue -> concurrency limit, and ``<queue>#key`` -> per-key limit."""
        found = self._call("HGETALL", self.base + "limits")
        pairs = zip(found[::2], found[1::2], strict=True)
        return {self.unqname(q): int(n) for q, n in sorted(pairs) if q.startswith(self.prefix)}

    # -- paused queues (pause.lua, resume.lua; HASH B paused: Q -> paused_at) ---------------------------------
    def pause(self, queue: str, now: float) -> bool:
        return bool(self._run("pause", self.qname(queue), repr(now)))

    def resume(self, queue: str) -> bool:
        return bool(self._run("resume", self.qname(queue)))

    def paused(self) -> dict[str, float]:
        found = self._call("HGETALL", self.base + "paused")
        pairs = zip(found[::2], found[1::2], strict=True)
        return {self.unqname(q): float(at) for q, at in pairs if q.startswith(self.prefix)}

    def set_progress(self, job_id: str, progress: dict[str, Any] | None, meta: dict[str, Any] | None) -> bool:
        return bool(self._run("progress", job_id, _dump(progress) or "", _dump(meta) or ""))

    # -- management --------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        reply = self._run("fetch", job_id)
        return None if reply is None else self._job(json.loads(reply))

    def list(
        self,
        queues: Sequence[str] | None = None,
        states: Sequence[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        descending: bool = False,
    ) -> builtins.list[Job]:
        if (queues is not None and not queues) or (states is not None and not states) or limit <= 0:
            return []
        qnames = sorted({self.qname(q) for q in queues or ()})
        wanted = sorted(set(states or ()))
        reply = self._run("select", str(len(qnames)), *qnames, str(len(wanted)), *wanted, str(max(offset, 0)),
                          str(limit), "1" if descending else "")
        return self._jobs(reply)

    def _counters(self) -> dict[tuple[str, str], int]:
        flat: builtins.list[str] = self._call("HGETALL", self.base + "counts")
        out: dict[tuple[str, str], int] = {}
        for i in range(0, len(flat), 2):
            queue, _, state = flat[i].rpartition("|")
            out[self.unqname(queue), state] = int(flat[i + 1])
        return out

    def count(self, queues: Sequence[str] | None = None, states: Sequence[str] | None = None) -> int:
        return sum(n for (queue, state), n in self._counters().items()
                   if (queues is None or queue in queues) and (states is None or state in states))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (queue, state), n in self._counters().items():
            out.setdefault(queue, {})[state] = n
        return out

    def waiting_since(self, now: float) -> dict[str, float]:
        flat = self._run("waiting", repr(now))
        return {self.unqname(flat[i]): float(flat[i + 1]) for i in range(0, len(flat), 2)}

    def cancel(self, job_id: str, now: float) -> Job | None:
        reply = self._run("cancel", job_id, repr(now))
        return None if reply is None else self._job(json.loads(reply))

    def to_front(self, job_id: str) -> bool:
        return bool(int(self._run("front", job_id)))

    def retry_now(self, job_id: str, now: float) -> Job | None:
        reply = self._run("retry_now", job_id, repr(now))
        return None if reply is None else self._job(json.loads(reply))

    def delete(self, job_id: str) -> bool:
        return bool(self._run("delete", job_id))

    def clear(self, queues: Sequence[str] | None = None) -> int:
        if queues is not None and not queues:
            return 0
        names = sorted({self.qname(q) for q in queues}) if queues is not None else []
        return int(self._run("clear", *names))

    def purge(self, ended_before: float, limit: int = 10_000) -> int:
        if limit <= 0:
            return 0
        return int(self._run("purge", repr(ended_before), str(limit)))

    # -- workers -----------------------------------------------------------------------------------------
    def register_worker(self, info: WorkerInfo) -> None:
        self._run("workers", "register", info.id, repr(info.last_seen), _dumps(info.to_dict()))

    def unregister_worker(self, worker_id: str) -> None:
        self._run("workers", "unregister", worker_id)

    def list_workers(self, seen_after: float) -> builtins.list[WorkerInfo]:
        found: builtins.list[str | None] = self._run("workers", "list", repr(seen_after))
        workers = [WorkerInfo(**json.loads(data)) for data in found if data is not None]
        return sorted(workers, key=lambda w: w.id)

    def reap_dead_workers(
        self, worker_id: str, now: float, seen_before: float, dead: Sequence[str] = ()
    ) -> builtins.list[Job]:
        return self._jobs(self._run("reap", worker_id, repr(now), repr(seen_before), *dead))

    # -- schedules ---------------------------------------------------------------------------------------
    def enqueue_periodic(self, name: str, slot: float, job: Job, now: float) -> bool:
        return bool(self._run("periodic", name, repr(slot), *self._enqueue_args([job], repr(now))))

    def schedule_runs(self) -> dict[str, ScheduleRun]:
        flat: builtins.list[str] = self._call("HGETALL", self.base + "runs")
        out: dict[str, ScheduleRun] = {}
        for i in range(0, len(flat), 2):
            slot, _, job_id = flat[i + 1].partition("|")
            out[flat[i]] = ScheduleRun(flat[i], float(slot), job_id or None)
        return out

    # -- records -----------------------------------------------------------------------------------------
    def _record_key(self, kind: str) -> str:
        return f"{self.base}rec:{kind}"

    def put_record(self, kind: str, key: str, data: dict[str, Any]) -> None:
        self._call("HSET", self._record_key(kind), key, _dumps(data))

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        data: str | None = self._call("HGET", self._record_key(kind), key)
        return None if data is None else dict(json.loads(data))

    def list_records(self, kind: str) -> builtins.list[tuple[str, dict[str, Any]]]:
        flat: builtins.list[str] = self._call("HGETALL", self._record_key(kind))
        return sorted(((flat[i], json.loads(flat[i + 1])) for i in range(0, len(flat), 2)), key=lambda kv: kv[0])

    def delete_record(self, kind: str, key: str) -> bool:
        return bool(self._call("HDEL", self._record_key(kind), key))
