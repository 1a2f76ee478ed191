"""Real high-availability (and unusual-transport) servers for store tests, each private to one test.

Every class starts its servers from the machine's binaries on free loopback ports in a temporary directory
(like ``tests/servers.py``, whose ``PostgresServer`` and ``free_port`` this reuses) and offers ``start`` /
``kill`` / ``stop`` / ``cleanup``. ``start`` returns only once the setup is really usable: it polls the
condition that matters (a replica's link is up, every sentinel sees its peers, ``cluster_state:ok`` on every
node, a standby streams...), never a fixed sleep, and records how long that took in ``startup_seconds``.

- ``RedisSentinelSet``: master + replica + three sentinels (quorum 2), AOF on; kill the master, wait for the
  failover, bring the old master back.
- ``RedisCluster``: three masters, no replicas, made with ``redis-cli --cluster create``.
- ``RedisUnixSocket``: redis-server listening on a unix socket only.
- ``RedisTLS``: redis-server listening with TLS only, certificates from a throwaway CA (``TestCertificates``).
- ``PgBouncer``: PgBouncer in front of a private PostgreSQL, transaction pooling by default.
- ``PostgresPrimaryStandby``: a primary and a streaming hot standby (``pg_basebackup -R``); promote, stop.

Everything listens on 127.0.0.1 only, and every address a server advertises to others (replicas to their
master, sentinels to each other, cluster nodes to each other) is pinned to 127.0.0.1 so that what a client
is told is what it can reach.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import service_missing
from tests.servers import PostgresServer, free_port
from tests.waiting import wait_until

HOST = "127.0.0.1"
Addr = tuple[str, int]

# How long start() waits for a setup to become ready, and wait_* methods by default; generous for a slow CI.
READY_TIMEOUT = 30.0


def _binary(name: str, *elsewhere: str) -> str:
    """The path of a server binary; skip the test locally (fail in CI) when it is not installed."""
    found = shutil.which(name) or next((p for p in elsewhere if os.access(p, os.X_OK)), None)
    if found is None:
        service_missing(f"{name} binary", "not installed")
    return str(found)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _redis_client(**kwargs: Any) -> Any:
    """A redis-py client for polling and inspection: short timeouts and no retries, so that a poll answers
    quickly whether the server is there or not (redis-py's own default retries would hide a dead server)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 1, "retry": Retry(NoBackoff(), 0)}
    options.update(kwargs)
    return redis.Redis(**options)


def _redis_answers(kwargs: dict[str, Any], check: Callable[[Any], Any] = lambda c: c.ping()) -> Any:
    """``check(client)``'s result, or None when the server cannot be reached (yet)."""
    import redis

    client = _redis_client(**kwargs)
    try:
        return check(client)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return None
    finally:
        client.close()


def _addr(answer: Any) -> Addr:
    """(host, port) from redis-py's answer to SENTINEL get-master-addr-by-name (host may be bytes)."""
    host, port = answer
    return (host.decode() if isinstance(host, bytes) else str(host), int(port))


def _sinks() -> dict[str, Any]:
    return {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


class RedisProcess:
    """One redis-server (or Redis Sentinel) process, configured by a file in its own directory.

    A config file rather than command-line options because Sentinel must be able to rewrite its own file (it
    refuses to start otherwise), and a failover has Sentinel rewrite the data nodes' files too (it sends
    ``REPLICAOF`` + ``CONFIG REWRITE``); the file is written once, so a restart keeps what was rewritten.
    """

    def __init__(self, directory: Path, settings: list[str], *, address: Addr | None = None,
                 unixsocket: Path | None = None, sentinel: bool = False,
                 client_kwargs: dict[str, Any] | None = None) -> None:
        self.binary = _binary("redis-server")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.unixsocket = unixsocket
        self.sentinel = sentinel
        self.conf = self.dir / ("sentinel.conf" if sentinel else "redis.conf")
        self.log = self.dir / "redis.log"
        self.settings = [f"bind {HOST}", f"dir {self.dir}", f"logfile {self.log}", *settings]
        self._client_kwargs = client_kwargs or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        assert self.address is not None
        return self.address[1]

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis`` that reach this server (TCP, unix socket, TLS options)."""
        where: dict[str, Any] = ({"unix_socket_path": str(self.unixsocket)} if self.unixsocket is not None
                                 else {"host": self.address[0], "port": self.address[1]} if self.address
                                 else {})
        return {**where, **self._client_kwargs, **overrides}

    def client(self, **overrides: Any) -> Any:
        """A redis-py client for this server (short timeouts, no retries: for inspection, not load)."""
        return _redis_client(**self.client_kwargs(**overrides))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *extra_args: str, timeout: float = READY_TIMEOUT) -> None:
        """Start the process and wait until it answers PING (and fail fast, with its log, if it exits)."""
        if not self.conf.exists():
            self.conf.write_text("\n".join(self.settings) + "\n")
        args = [self.binary, str(self.conf), *(["--sentinel"] if self.sentinel else []), *extra_args]
        self.proc = subprocess.Popen(args, **_sinks())
        wait_until(self._answers, timeout, interval=0.01, what=f"redis-server in {self.dir} answering PING")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server in {self.dir} exited with {self.proc.returncode}:\n{_tail(self.log)}")
        return bool(_redis_answers(self.client_kwargs()))

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all, like a crashed machine (minus the lost page cache)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (the AOF is flushed); SIGKILL if that takes more than 10 s."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisSentinelSet:
    """A Redis master, one replica (``replicas``: more) and three Sentinels monitoring the master as ``service``
    with quorum 2.

    Settings chosen for fast, deterministic tests:

    - ``down-after-milliseconds`` 1000 and ``failover-timeout`` 2000, so a killed master is replaced within a
      few seconds (the rest of a failover is Sentinel's own pacing: ~1 s to agree that the master is down
      (ODOWN), up to 1 s of random desynchronisation before the leader election, ~1 s to see the promotion).
    - ``repl-diskless-sync-delay 0``: Redis 7 waits 5 s by default before a full sync, for more replicas to
      join; here that would be 5 s on every start, and on every return of an old master as a replica.
    - ``replica-announce-ip`` / ``sentinel announce-ip`` 127.0.0.1: a master reports its replicas, and
      sentinels advertise themselves to each other (hello messages), at the address the connection came
      from, which is only by luck the address a client can reach; pinned, the addresses that Sentinel hands
      to clients (and that ``master_addr`` returns) are always the loopback ones the servers listen on.
    - less waiting for discovery. Left to itself, a sentinel learns of its peers from their hello messages
      (published on the master every 2 s) and of a replica from the master's INFO (asked every 10 s, and
      the first time at once, maybe before the replica connected), so a set would be complete only seconds
      after it starts. Here each sentinel's config already names the replica (``known-replica``) and the
      other two sentinels (``known-sentinel``, their ids fixed by ``sentinel myid``), as Sentinel itself
      writes them once it knows them. What remains is ~1 s: a sentinel started before a peer finds it not
      listening yet and tries again only after its 1-s ping period. Readiness is checked for real.
    - AOF on (``appendonly yes``, ``appendfsync everysec``), as a production master would run.
    """

    service = "mymaster"

    def __init__(self, *, down_after_ms: int = 1000, failover_timeout_ms: int = 2000,
                 appendonly: bool = True, replicas: int = 1) -> None:
        _binary("redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="offload-sentinel-"))
        self.startup_seconds: float | None = None
        ports = [free_port() for _ in range(1 + replicas)]
        data = ["save \"\"", f"appendonly {'yes' if appendonly else 'no'}", "appendfsync everysec",
                "repl-diskless-sync-delay 0", f"replica-announce-ip {HOST}"]
        self.nodes = [
            RedisProcess(self.dir / "redis-a", [f"port {ports[0]}", *data], address=(HOST, ports[0])),
            *(RedisProcess(self.dir / f"redis-{'bcdefgh'[i]}", [f"port {port}", *data, f"replicaof {HOST} {ports[0]}"],
                           address=(HOST, port)) for i, port in enumerate(ports[1:])),
        ]
        sentinel_ports = [free_port() for _ in range(3)]
        ids = [secrets.token_hex(20) for _ in sentinel_ports]
        self.sentinels: list[RedisProcess] = []
        for i, port in enumerate(sentinel_ports):
            name = self.service
            settings = [
                f"port {port}",
                f"sentinel myid {ids[i]}",
                f"sentinel announce-ip {HOST}",
                f"sentinel monitor {name} {HOST} {ports[0]} 2",
                f"sentinel down-after-milliseconds {name} {down_after_ms}",
                f"sentinel failover-timeout {name} {failover_timeout_ms}",
                f"sentinel parallel-syncs {name} 1",
                *(f"sentinel known-replica {name} {HOST} {port}" for port in ports[1:]),
                *(f"sentinel known-sentinel {name} {HOST} {p} {ids[j]}"
                  for j, p in enumerate(sentinel_ports) if j != i),
            ]
            self.sentinels.append(RedisProcess(self.dir / f"sentinel-{i}", settings, address=(HOST, port),
                                               sentinel=True))
        self._killed: RedisProcess | None = None

    @property
    def sentinel_addrs(self) -> list[Addr]:
        return [s.address for s in self.sentinels if s.address is not None]

    @property
    def sentinel_url(self) -> str:
        """The set as one URL, in the ``redis+sentinel://host:port,host:port/service/db`` convention."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinel_addrs)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def sentinel_client(self, **kwargs: Any) -> Any:
        """A ``redis.sentinel.Sentinel`` over the three sentinels (``kwargs`` go to the master/replica clients)."""
        from redis.sentinel import Sentinel

        options = {"socket_timeout": 1, "socket_connect_timeout": 1, **kwargs}
        return Sentinel(self.sentinel_addrs, sentinel_kwargs={"socket_timeout": 1, "socket_connect_timeout": 1},
                        **options)

    def start(self) -> None:
        """Start master, replica (until its link is up: sentinels then see it at once) and the sentinels
        (until each sees the master up, the replica linked and both peers connected)."""
        began = time.monotonic()
        master, *replicas = self.nodes
        master.start()
        for replica in replicas:
            replica.start()
        for replica in replicas:
            self.wait_replica_of(replica, master.port)
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self._sentinels_ready, READY_TIMEOUT, interval=0.02,
                   what="every sentinel seeing the master, the replica and its two peers")
        self.startup_seconds = time.monotonic() - began

    def _sentinels_ready(self) -> bool:
        def ready(client: Any) -> bool:
            master = client.sentinel_master(self.service)
            replicas = client.sentinel_slaves(self.service)
            peers = client.sentinel_sentinels(self.service)
            return (master["is_master"] and not master["is_sdown"] and not master["is_odown"]
                    and len(replicas) == len(self.nodes) - 1
                    and all(r["is_slave"] and not r["is_disconnected"] and not r["is_sdown"]
                            and r.get("master-link-status") == "ok" for r in replicas)
                    and len(peers) == 2
                    and all(not p["is_disconnected"] and not p["is_sdown"] for p in peers))

        return all(_redis_answers(s.client_kwargs(), ready) for s in self.sentinels)

    def node_at(self, addr: Addr) -> RedisProcess:
        """The data node (master or replica) listening at ``addr``."""
        for node in self.nodes:
            if node.address == (addr[0], int(addr[1])):
                return node
        raise KeyError(addr)

    def master_addr(self) -> Addr:
        """The master's address according to the first sentinel that answers (SENTINEL
        get-master-addr-by-name)."""
        for sentinel in self.sentinels:
            answer = _redis_answers(sentinel.client_kwargs(),
                                    lambda c: c.sentinel_get_master_addr_by_name(self.service))
            if answer:
                return _addr(answer)
        raise RuntimeError("no sentinel answered")

    def replica_addr(self) -> Addr:
        """The (first) data node that is not the master (according to Sentinel)."""
        master = self.master_addr()
        other = next(n for n in self.nodes if n.address != master)
        assert other.address is not None
        return other.address

    def kill_master(self) -> Addr:
        """SIGKILL the current master; return its address."""
        addr = self.master_addr()
        node = self.node_at(addr)
        node.kill()
        self._killed = node
        return addr

    def wait_for_failover(self, old_addr: Addr, timeout: float = READY_TIMEOUT) -> Addr:
        """Wait until every running sentinel names the same master other than ``old_addr`` and that node
        really is a master (role:master); return its address."""

        def new_master() -> Addr | None:
            answers = set()
            for sentinel in self.sentinels:
                if not sentinel.running:
                    continue
                answer = _redis_answers(sentinel.client_kwargs(),
                                        lambda c: c.sentinel_get_master_addr_by_name(self.service))
                if not answer:
                    return None
                answers.add(_addr(answer))
            if len(answers) != 1:
                return None
            addr = answers.pop()
            if addr == tuple(old_addr):
                return None
            role = _redis_answers(self.node_at(addr).client_kwargs(), lambda c: c.info("replication")["role"])
            return addr if role == "master" else None

        return wait_until(new_master, timeout, interval=0.05, what=f"a failover away from {old_addr}")  # type: ignore[no-any-return]

    def restart_old_master(self, as_replica: bool = True, timeout: float = READY_TIMEOUT) -> Addr:
        """Start the node that ``kill_master`` killed again (with its AOF); return its address.

        ``as_replica=True`` starts it as a replica of the current master (what an operator or orchestrator
        does) and waits until it is in sync. ``as_replica=False`` starts it as it was, a stale master that
        accepts writes until Sentinel demotes it: Sentinel waits 8 s (4 hello periods) after seeing it claim
        the master role, and looks only at its 10-s INFO period, so that takes 8 to 20 s
        (``wait_replica_of`` waits for it)."""
        node = self._killed
        assert node is not None, "kill_master() first"
        if as_replica:
            host, port = self.master_addr()
            node.start("--replicaof", host, str(port), timeout=timeout)
            self.wait_replica_of(node, port, timeout)
        else:
            node.start(timeout=timeout)
        self._killed = None
        assert node.address is not None
        return node.address

    def wait_replica_of(self, node: RedisProcess, master_port: int, timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``node`` replicates from the master on ``master_port`` with its link up."""

        def linked(client: Any) -> bool:
            info = client.info("replication")
            return (info["role"] == "slave" and int(info["master_port"]) == master_port
                    and info["master_link_status"] == "up" and not info.get("master_sync_in_progress"))

        wait_until(lambda: _redis_answers(node.client_kwargs(), linked), timeout, interval=0.02,
                   what=f"{node.address} replicating from port {master_port}")

    def kill(self) -> None:
        """SIGKILL every process (sentinels first, so that none reacts to the data nodes going)."""
        for process in [*self.sentinels, *self.nodes]:
            process.kill()

    def stop(self) -> None:
        """SIGTERM every process (sentinels first): clean shutdowns, the AOF flushed."""
        for process in [*self.sentinels, *self.nodes]:
            process.stop()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of ``masters`` masters and no replicas, each node on its own port.

    Each node's cluster bus port is chosen free (``cluster-port``) instead of Redis's default port + 10000:
    free ports come from the ephemeral range (up to 60999 here), so port + 10000 may not exist or may be
    taken. ``cluster-announce-ip`` pins what the nodes tell clients (MOVED redirections, CLUSTER SLOTS) to
    127.0.0.1. ``cluster-node-timeout`` is short (see below), so a killed node is marked failed quickly; AOF
    is off by default (nothing here tests a cluster node's durability).

    Start-up takes ~2 s whatever the creation method: a master reports ``cluster_state:ok`` only 2 s after
    its own start (Redis's CLUSTER_WRITABLE_DELAY, so that a rebooted master does not take writes before the
    cluster could reconfigure it); joining the nodes by hand (ADDSLOTSRANGE + MEET) was measured no faster.
    ``cluster-node-timeout`` 1000 ms rather than 2000 keeps it at ~2 s: nodes gossip with any peer not
    heard from for half the timeout, and with 2000 ``redis-cli --cluster create`` (which checks, then sleeps
    a second, until all nodes agree) often took a round or two more (2.1 to 4.1 s measured, 2.1 s with
    1000). The price: a node frozen for over a second would be marked failed; none was, even with both
    cores busy.
    """

    def __init__(self, masters: int = 3, *, node_timeout_ms: int = 1000, appendonly: bool = False) -> None:
        _binary("redis-server")
        self.cli = _binary("redis-cli")
        self.dir = Path(tempfile.mkdtemp(prefix="offload-cluster-"))
        self.startup_seconds: float | None = None
        self.nodes: list[RedisProcess] = []
        for i in range(masters):
            port, bus = free_port(), free_port()
            node_dir = self.dir / f"node-{i}"
            settings = [f"port {port}", "cluster-enabled yes", f"cluster-config-file {node_dir / 'nodes.conf'}",
                        f"cluster-port {bus}", f"cluster-announce-ip {HOST}",
                        f"cluster-node-timeout {node_timeout_ms}", "save \"\"",
                        f"appendonly {'yes' if appendonly else 'no'}", "appendfsync everysec"]
            self.nodes.append(RedisProcess(node_dir, settings, address=(HOST, port)))

    @property
    def addrs(self) -> list[Addr]:
        return [n.address for n in self.nodes if n.address is not None]

    @property
    def url(self) -> str:
        """A URL for one node (a cluster client discovers the others from it); a cluster has only db 0."""
        return f"redis://{HOST}:{self.nodes[0].port}/0"

    def cluster_client(self, **kwargs: Any) -> Any:
        """A ``redis.cluster.RedisCluster`` started from every node's address."""
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in self.addrs], **kwargs)

    def start(self) -> None:
        """Start the nodes, join them with ``redis-cli --cluster create`` (slots split evenly) and wait until
        every node says ``cluster_state:ok`` and knows all the others."""
        began = time.monotonic()
        for node in self.nodes:
            node.start()
        result = subprocess.run(
            [self.cli, "--cluster", "create", *(f"{h}:{p}" for h, p in self.addrs),
             "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=READY_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{result.stdout}\n{result.stderr}")
        self.wait_state("ok")
        self.startup_seconds = time.monotonic() - began

    def cluster_info(self, node: RedisProcess) -> dict[str, str] | None:
        """``CLUSTER INFO`` of one node, or None when it does not answer."""

        def info(client: Any) -> dict[str, str]:
            answer = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict of str
            if isinstance(answer, bytes):
                answer = dict(line.split(":", 1) for line in answer.decode().split() if ":" in line)
            return {str(k): str(v) for k, v in answer.items()}

        return _redis_answers(node.client_kwargs(), info)  # type: ignore[no-any-return]

    def wait_state(self, state: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every running node reports ``cluster_state:<state>`` (and, for ``ok``, knows every node
        and serves all 16384 slots)."""

        def reached() -> bool:
            for node in self.nodes:
                if not node.running:
                    continue
                info = self.cluster_info(node)
                if info is None or info.get("cluster_state") != state:
                    return False
                if state == "ok" and (info.get("cluster_known_nodes") != str(len(self.nodes))
                                      or info.get("cluster_slots_ok") != "16384"):
                    return False
            return True

        wait_until(reached, timeout, interval=0.02, what=f"cluster_state:{state} on every running node")

    def kill_node(self, index: int) -> Addr:
        """SIGKILL one node; return its address. With no replicas, its slots go unserved: once the others
        agree it has failed (after ``cluster-node-timeout``), they report ``cluster_state:fail``."""
        self.nodes[index].kill()
        return self.addrs[index]

    def restart_node(self, index: int) -> None:
        """Start a killed node again; it rejoins from its nodes.conf (wait_state("ok") to wait for that)."""
        self.nodes[index].start()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisUnixSocket:
    """redis-server listening only on a unix socket (``port 0`` turns TCP off), permissions 700."""

    def __init__(self, *, appendonly: bool = False) -> None:
        # mkdtemp under /tmp keeps the socket path well inside the 107-byte limit of sun_path.
        self.dir = Path(tempfile.mkdtemp(prefix="offload-redis-unix-"))
        self.socket = self.dir / "redis.sock"
        self.startup_seconds: float | None = None
        settings = ["port 0", f"unixsocket {self.socket}", "unixsocketperm 700", "save \"\"",
                    f"appendonly {'yes' if appendonly else 'no'}", "appendfsync everysec"]
        self.node = RedisProcess(self.dir, settings, unixsocket=self.socket)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def client(self, **kwargs: Any) -> Any:
        return self.node.client(**kwargs)

    def start(self) -> None:
        began = time.monotonic()
        self.node.start()
        self.startup_seconds = time.monotonic() - began

    def kill(self) -> None:
        self.node.kill()

    def stop(self) -> None:
        self.node.stop()

    def cleanup(self) -> None:
        self.node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCertificates:
    """A throwaway certificate authority and a server and a client certificate it signed, made with the
    ``openssl`` command line (P-256 keys: a few milliseconds each, where RSA takes tens to hundreds).

    The extensions are spelled out (CA basicConstraints and keyUsage, server/client extendedKeyUsage, key
    identifiers) because strict verifiers require them (Python 3.13's default context sets
    VERIFY_X509_STRICT); the server certificate names 127.0.0.1 and localhost as subjectAltNames, so clients
    that check the host name accept it. Files: ``ca``, ``server_cert``/``server_key``,
    ``client_cert``/``client_key``, and ``other_ca``, a second CA that signed neither (for negative tests).
    """

    __test__ = False  # not a pytest test class, despite its name

    EXTENSIONS = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

    def __init__(self, directory: Path) -> None:
        self.openssl = _binary("openssl")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "openssl.cnf"
        self.config.write_text(self.EXTENSIONS)
        self.ca, self.ca_key = self._self_signed("ca", "offload test CA")
        self.other_ca, _ = self._self_signed("other-ca", "offload other test CA")
        self.server_cert, self.server_key = self._signed("server", "localhost")
        self.client_cert, self.client_key = self._signed("client", "offload test client")

    def _openssl(self, *args: str) -> None:
        subprocess.run([self.openssl, *args], check=True, capture_output=True, cwd=self.dir)

    def _new_key(self, name: str) -> list[str]:
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(self.dir / f"{name}.key")]

    def _self_signed(self, name: str, cn: str) -> tuple[Path, Path]:
        self._openssl("req", "-x509", "-config", str(self.config), "-extensions", "ca", *self._new_key(name),
                      "-subj", f"/CN={cn}", "-days", "2", "-out", str(self.dir / f"{name}.crt"))
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def _signed(self, kind: str, cn: str) -> tuple[Path, Path]:
        csr = self.dir / f"{kind}.csr"
        self._openssl("req", "-new", "-config", str(self.config), *self._new_key(kind), "-subj", f"/CN={cn}",
                      "-out", str(csr))
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                      "-set_serial", str(secrets.randbits(63)), "-days", "2", "-extfile", str(self.config),
                      "-extensions", kind, "-out", str(self.dir / f"{kind}.crt"))
        return self.dir / f"{kind}.crt", self.dir / f"{kind}.key"


class RedisTLS:
    """redis-server listening only with TLS (``port 0``, ``tls-port``), its certificate from a throwaway CA.

    ``auth_clients=True`` (``tls-auth-clients yes``) makes Redis require a client certificate signed by the
    CA; ``False`` (``tls-auth-clients no``) accepts clients without one. ``url`` is ``rediss://``; the
    client needs ``ca`` to verify the server, and ``client_cert``/``client_key`` when clients must
    authenticate (``client(with_cert=...)`` builds a redis-py client either way).
    """

    def __init__(self, *, auth_clients: bool = True) -> None:
        _binary("redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="offload-redis-tls-"))
        try:
            self.certs = TestCertificates(self.dir / "certs")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.port = free_port()
        self.auth_clients = auth_clients
        self.startup_seconds: float | None = None
        settings = ["port 0", f"tls-port {self.port}", f"tls-cert-file {self.certs.server_cert}",
                    f"tls-key-file {self.certs.server_key}", f"tls-ca-cert-file {self.certs.ca}",
                    f"tls-auth-clients {'yes' if auth_clients else 'no'}", "save \"\"", "appendonly no"]
        self.node = RedisProcess(self.dir / "redis", settings, address=(HOST, self.port),
                                 client_kwargs=self.ssl_kwargs())

    @property
    def url(self) -> str:
        return f"rediss://{HOST}:{self.port}/0"

    @property
    def ca(self) -> Path:
        return self.certs.ca

    @property
    def client_cert(self) -> Path:
        return self.certs.client_cert

    @property
    def client_key(self) -> Path:
        return self.certs.client_key

    def ssl_kwargs(self, with_cert: bool = True) -> dict[str, Any]:
        """redis-py's TLS options for this server, with or without the client certificate."""
        kwargs: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.certs.ca)}
        if with_cert:
            kwargs.update(ssl_certfile=str(self.certs.client_cert), ssl_keyfile=str(self.certs.client_key))
        return kwargs

    def client(self, with_cert: bool = True, **kwargs: Any) -> Any:
        return _redis_client(host=HOST, port=self.port, **{**self.ssl_kwargs(with_cert), **kwargs})

    def start(self) -> None:
        began = time.monotonic()
        self.node.start()
        self.startup_seconds = time.monotonic() - began

    def kill(self) -> None:
        self.node.kill()

    def stop(self) -> None:
        self.node.stop()

    def cleanup(self) -> None:
        self.node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_answers(conninfo: str, query: str, **kwargs: Any) -> Any:
    """The first row of ``query`` over a new connection, or None when the server cannot be reached."""
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True, **kwargs) as conn:
            return conn.execute(query).fetchone()
    except psycopg.OperationalError:
        return None


class PgBouncer:
    """PgBouncer in front of a PostgreSQL server: a private ``tests.servers.PostgresServer`` made (and cleaned
    up) here, or ``backend`` when given (then the caller owns it).

    Run as the ``postgres`` user when the tests run as root: PgBouncer refuses to run as root. It is started
    directly under that user (``Popen(user=...)``), not through runuser, so that ``kill`` signals PgBouncer
    itself. Settings: every database name maps to the backend (``* =``), ``auth_type trust`` (with the user
    in ``auth_file``, which trust still consults), ``postgres`` as admin (the ``pgbouncer`` console
    database, see ``admin``), ``pool_mode`` transaction unless told otherwise, ``default_pool_size`` 4, and
    ``server_login_retry`` 1 s instead of 15 s (after a failed connection or login to PostgreSQL, say while
    a test restarts it, PgBouncer would otherwise not try again for 15 s).

    ``max_prepared_statements`` (protocol-level named prepared statements in transaction pooling) exists
    only from PgBouncer 1.21 on; an older one refuses to start with it ("unknown parameter"), so asking for
    it there skips the test locally and fails it in CI (like a missing server), with the version in the
    message. ``version`` is the installed version, ``supports_prepared_statements`` says which case holds.
    """

    POOL_MODES = ("session", "transaction", "statement")

    def __init__(self, backend: PostgresServer | None = None, *, pool_mode: str = "transaction",
                 default_pool_size: int = 4, max_prepared_statements: int | None = None,
                 max_client_conn: int = 100, settings: dict[str, str] | None = None) -> None:
        if pool_mode not in self.POOL_MODES:
            raise ValueError(f"pool_mode must be one of {self.POOL_MODES}")
        self.binary = self.find_binary()
        self.version = self.installed_version(self.binary)
        if max_prepared_statements is not None and not self.supports_prepared_statements:
            service_missing("PgBouncer >= 1.21 (max_prepared_statements)",
                            f"the installed PgBouncer is {'.'.join(map(str, self.version))}")
        self._owns_backend = backend is None
        self.backend = backend if backend is not None else PostgresServer()
        self.dir = Path(tempfile.mkdtemp(prefix="offload-pgbouncer-"))
        self.port = free_port()
        self.pool_mode = pool_mode
        self.startup_seconds: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "pgbouncer.log"
        values = {
            "listen_addr": HOST, "listen_port": str(self.port), "unix_socket_dir": str(self.dir),
            "auth_type": "trust", "auth_file": str(self.dir / "userlist.txt"),
            "admin_users": "postgres", "stats_users": "postgres",
            "pool_mode": pool_mode, "default_pool_size": str(default_pool_size), "reserve_pool_size": "0",
            "max_client_conn": str(max_client_conn), "server_login_retry": "1",
            "ignore_startup_parameters": "extra_float_digits", "logfile": str(self.log),
        }
        if max_prepared_statements is not None:
            values["max_prepared_statements"] = str(max_prepared_statements)
        values.update(settings or {})
        self.settings = values
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host={HOST} port={self.backend.port}\n\n[pgbouncer]\n"
            + "".join(f"{k} = {v}\n" for k, v in values.items()))
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for path in self.dir.iterdir():
                shutil.chown(path, "postgres", "postgres")
            self._user = {"user": "postgres", "group": "postgres", "extra_groups": []}

    @staticmethod
    def find_binary() -> str:
        """The pgbouncer binary (Debian puts it in /usr/sbin, which a non-root PATH may lack)."""
        return _binary("pgbouncer", "/usr/sbin/pgbouncer")

    @staticmethod
    def installed_version(binary: str) -> tuple[int, ...]:
        """PgBouncer's version from ``pgbouncer --version`` ("PgBouncer 1.18.0" -> (1, 18, 0))."""
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"PgBouncer (\d+)\.(\d+)(?:\.(\d+))?", out)
        if match is None:
            raise RuntimeError(f"unrecognised pgbouncer --version output: {out!r}")
        return tuple(int(part or 0) for part in match.groups())

    @property
    def supports_prepared_statements(self) -> bool:
        """Whether this PgBouncer has ``max_prepared_statements`` (1.21 and later)."""
        return self.version >= (1, 21)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @property
    def admin_url(self) -> str:
        """The admin console: SHOW POOLS, PAUSE, RESUME, RECONNECT... (simple query protocol only)."""
        return f"postgresql://postgres@{HOST}:{self.port}/pgbouncer"

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run an admin console command (no parameters: psycopg then sends it as a simple query, the
        console's own protocol); its rows as dicts (empty for commands without rows)."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=2) as conn:
            cur = conn.cursor(row_factory=dict_row)
            cur.execute(command)
            return cur.fetchall() if cur.description else []

    def pools(self, database: str = "postgres") -> dict[str, Any]:
        """The ``SHOW POOLS`` row of ``database`` (cl_active, cl_waiting, sv_active, sv_idle, pool_mode...)."""
        for row in self.admin("SHOW POOLS"):
            if row["database"] == database:
                return row
        raise KeyError(database)

    def start(self) -> None:
        """Start PgBouncer (and the private backend first, if it is not running); wait until a query
        through PgBouncer reaches PostgreSQL."""
        began = time.monotonic()
        if self._owns_backend and not (self.backend.data / "postmaster.pid").exists():
            self.backend.start()
        self.proc = subprocess.Popen([self.binary, str(self.dir / "pgbouncer.ini")], cwd=self.dir, **_sinks(),
                                     **self._user)
        wait_until(self._ready, READY_TIMEOUT, interval=0.01, what="PgBouncer passing a query to PostgreSQL")
        self.startup_seconds = time.monotonic() - began

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{_tail(self.log)}")
        return _pg_answers(self.url, "SELECT 1") == (1,)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL PgBouncer (the backend keeps running)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (before 1.23: immediate shutdown, closing every connection); SIGKILL after 10 s."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.kill()
        if self._owns_backend:
            self.backend.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


class _BaseBackupServer(PostgresServer):
    """A ``PostgresServer`` whose data directory is a ``pg_basebackup`` of another server rather than a fresh
    initdb; everything else (start, stop, the postgres user, fsync off) is ``PostgresServer``'s own.

    ``-R`` writes standby.signal and primary_conninfo, so it starts as a streaming standby; ``-C -S`` makes a
    physical replication slot on the primary, so the primary keeps the WAL the standby has not received
    (a standby briefly stopped, or slow, still catches up); ``-c fast`` does not wait for a checkpoint."""

    def __init__(self, primary: PostgresServer, slot: str) -> None:  # no super().__init__: it would initdb
        self.bin = primary.bin
        self.as_user = primary.as_user
        self.root = Path(tempfile.mkdtemp(prefix="offload-pg-standby-"))
        os.chmod(self.root, 0o777)
        self.data = self.root / "data"
        self.port = free_port()
        try:
            self._run("pg_basebackup", "-h", HOST, "-p", str(primary.port), "-U", "postgres", "-D",
                      str(self.data), "-R", "-X", "stream", "-C", "-S", slot, "-c", "fast", "--no-sync")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise


class PostgresPrimaryStandby:
    """A PostgreSQL primary and a hot standby streaming from it (``pg_basebackup -R``), both running.

    The primary's settings are written to its postgresql.conf (and so copied to the standby) although most
    are PostgreSQL 15's defaults, so the setup says what it relies on. ``wal_receiver_status_interval`` 1 s
    keeps pg_stat_replication fresh. After ``promote_standby`` the old primary is not turned into a standby
    (no pg_rewind): starting it again makes two primaries, which is a test's business.
    """

    SLOT = "standby"

    def __init__(self) -> None:
        self.primary = PostgresServer()
        self.standby: PostgresServer | None = None
        self.startup_seconds: float | None = None
        settings = {"wal_level": "replica", "max_wal_senders": "4", "max_replication_slots": "4",
                    "hot_standby": "on", "wal_receiver_status_interval": "1s"}
        with (self.primary.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def _standby(self) -> PostgresServer:
        assert self.standby is not None, "start() first"
        return self.standby

    @property
    def primary_url(self) -> str:
        return self.primary.url

    @property
    def standby_url(self) -> str:
        return self._standby().url

    def multi_host_url(self, target_session_attrs: str | None = None, standby_first: bool = False) -> str:
        """``postgresql://postgres@127.0.0.1:P1,127.0.0.1:P2/postgres`` (primary first unless
        ``standby_first``); libpq/psycopg try the hosts in order, keeping the first whose session matches
        ``target_session_attrs`` (any, read-write, read-only, primary, standby, prefer-standby)."""
        ports = [self.primary.port, self._standby().port]
        if standby_first:
            ports.reverse()
        url = f"postgresql://postgres@{','.join(f'{HOST}:{p}' for p in ports)}/postgres"
        return url + (f"?target_session_attrs={target_session_attrs}" if target_session_attrs else "")

    def start(self) -> None:
        """Start the primary, base-backup it into a standby, start that, and wait until it streams."""
        began = time.monotonic()
        self.primary.start()
        if self.standby is None:
            self.standby = _BaseBackupServer(self.primary, self.SLOT)
        self.standby.start()
        self.wait_streaming()
        self.startup_seconds = time.monotonic() - began

    def wait_streaming(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the primary's walsender streams to the standby and the standby accepts queries."""
        wait_until(lambda: _pg_answers(self.primary.url, "SELECT count(*) FROM pg_stat_replication"
                                                         " WHERE state = 'streaming'") == (1,),
                   timeout, interval=0.02, what="the standby streaming from the primary")
        wait_until(lambda: _pg_answers(self.standby_url, "SELECT pg_is_in_recovery()") == (True,),
                   timeout, interval=0.02, what="the standby accepting read-only queries")

    def wait_replayed(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        row = _pg_answers(self.primary.url, "SELECT pg_current_wal_lsn()::text")
        assert row is not None, "the primary does not answer"
        query = f"SELECT pg_last_wal_replay_lsn() >= '{row[0]}'::pg_lsn"
        wait_until(lambda: _pg_answers(self.standby_url, query) == (True,), timeout, interval=0.01,
                   what=f"the standby replaying up to {row[0]}")

    def promote_standby(self, timeout: float = READY_TIMEOUT) -> None:
        """``pg_ctl promote`` the standby and wait until it leaves recovery (accepts writes)."""
        standby = self._standby()
        standby._run("pg_ctl", "-D", str(standby.data), "-w", "-t", str(int(timeout)), "promote")
        wait_until(lambda: _pg_answers(self.standby_url, "SELECT pg_is_in_recovery()") == (False,),
                   timeout, interval=0.02, what="the promoted standby leaving recovery")

    def stop_primary(self, mode: str = "immediate") -> None:
        """``pg_ctl stop -m <mode>``: immediate is a crash (no checkpoint), fast/smart a clean shutdown."""
        self.primary.stop(mode)

    def start_primary(self) -> None:
        self.primary.start()

    def stop_standby(self, mode: str = "immediate") -> None:
        self._standby().stop(mode)

    def stop(self, mode: str = "immediate") -> None:
        """Stop both servers (``start`` starts both again, the standby still a standby unless promoted)."""
        if self.standby is not None:
            self.standby.stop(mode)
        self.primary.stop(mode)

    def cleanup(self) -> None:
        if self.standby is not None:
            self.standby.cleanup()
        self.primary.cleanup()

