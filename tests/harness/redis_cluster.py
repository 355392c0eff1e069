"""A real Redis Cluster for tests: N masters + N replicas on loopback, from one redis-server binary.

    cluster = RedisClusterHarness()        # 3 masters + 1 replica each, no persistence
    cluster.start()                        # nodes up, `redis-cli --cluster create`, all healthy
    cluster.startup_nodes                  # [("127.0.0.1", port), ...] every node
    cluster.nodes                          # ["127.0.0.1:port", ...] for a node-list setting
    cluster.url                            # redis://127.0.0.1:<a live master's port>
    client = cluster.client()              # redis.cluster.RedisCluster (sync), with retries
    aclient = cluster.async_client()       # redis.asyncio.cluster.RedisCluster, with retries

    cluster.masters()                      # running masters, ordered by their lowest slot
    cluster.replicas_of(master)            # running replicas attached to that master
    cluster.master_of_key("{visitor:1}")   # CLUSTER KEYSLOT + CLUSTER SLOTS -> RedisServer
    cluster.await_replicated()             # every replica has every master's last write

    old = cluster.kill_master(0)           # SIGKILL the master that owns slot 0
    new = cluster.await_failover(old)      # its replica is promoted, cluster_state ok again
    cluster.restart_node(old)              # comes back on its port, rejoins as a replica

    cluster.reshard(src, dst, slots=100)   # `redis-cli --cluster reshard` (keys move too)
    cluster.await_stable()                 # healthy and `redis-cli --cluster check` passes
    cluster.flushall()                     # FLUSHALL on every master
    cluster.cleanup()                      # kill every node, remove the temp dir

Every node is a tests.harness.RedisServer (same binary discovery, free loopback ports, temp dirs
and atexit cleanup) started with `cluster-enabled yes`, a short `cluster-node-timeout` so that a
failover takes a few seconds, and its `nodes.conf` in its own data dir (a restarted node keeps
its identity). The cluster bus port is chosen explicitly (`cluster-port`) rather than left at
port + 10000, which would fall outside the port range for an ephemeral port. `redis-cli` comes
from Debian's redis-tools (a dependency of redis-server; `make redis-server` installs both);
override its path with CROWD_REDIS_CLI.

Every wait polls the nodes themselves (CLUSTER INFO, CLUSTER NODES, ROLE / INFO replication,
`redis-cli --cluster check`) until the condition holds or a generous deadline passes: never a
fixed sleep. A failed wait raises RedisClusterError with the last thing it saw.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis
import redis.asyncio.cluster as async_cluster
import redis.cluster as sync_cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from .net import free_port
from .redis_server import LOOPBACK, RedisServer, RedisServerError, find_redis_server

__all__ = ["RedisClusterError", "RedisClusterHarness", "find_redis_cli"]

# Override the binary with CROWD_REDIS_CLI=/path/to/redis-cli.
CLI_ENV = "CROWD_REDIS_CLI"
SLOT_COUNT = 16384

_live: weakref.WeakSet[RedisClusterHarness] = weakref.WeakSet()
T = TypeVar("T")


class RedisClusterError(RuntimeError):
    """The cluster could not be started, reached no wanted state in time, or a tool failed."""


class _NotYet(Exception):
    """A polled condition does not hold yet; the message says what was seen."""


def find_redis_cli() -> str:
    """Path of redis-cli: CROWD_REDIS_CLI, next to the redis-server in use, or on PATH."""
    override = os.environ.get(CLI_ENV)
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise RedisClusterError(f"{CLI_ENV}={override!r} is not an executable file")
        return override
    beside_server = Path(find_redis_server()).with_name("redis-cli")
    if beside_server.is_file() and os.access(beside_server, os.X_OK):
        return str(beside_server)
    found = shutil.which("redis-cli")
    if found is None:
        raise RedisClusterError(
            "redis-cli not found: run `make redis-server` (installs Debian's redis-server and "
            f"redis-tools) or set {CLI_ENV} to its path"
        )
    return found


@dataclass(frozen=True)
class _NodeView:
    """One line of CLUSTER NODES, as one node sees another (or itself)."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    connected: bool

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "noaddr", "handshake"})

    @property
    def slot_count(self) -> int:
        return sum(end - start + 1 for start, end in self.slots)


def _parse_cluster_nodes(text: str) -> dict[str, _NodeView]:
    views: dict[str, _NodeView] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        node_id, address, flags, master, _ping, _pong, _epoch, link, *slot_fields = fields
        # address is ip:port@busport[,hostname]
        port_text = address.split("@", 1)[0].rsplit(":", 1)[-1]
        slots = []
        for field in slot_fields:
            if field.startswith("["):  # a slot being imported/migrated, not owned yet
                continue
            start, _, end = field.partition("-")
            slots.append((int(start), int(end or start)))
        views[node_id] = _NodeView(
            node_id=node_id,
            port=int(port_text) if port_text.isdigit() else 0,
            flags=frozenset(flags.split(",")),
            master_id=None if master == "-" else master,
            slots=tuple(sorted(slots)),
            connected=link == "connected",
        )
    return views


def _info_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


class RedisClusterHarness:
    """A Redis Cluster of `masters` masters with `replicas_per_master` replicas each."""

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        appendonly: bool = False,
        node_timeout_ms: int = 1500,
        timeout: float = 60.0,
    ) -> None:
        if masters < 3:
            # redis-cli --cluster create refuses fewer than 3 masters.
            raise ValueError("a Redis Cluster needs at least 3 masters")
        if replicas_per_master < 0:
            raise ValueError("replicas_per_master must be >= 0")
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        self.appendonly = appendonly
        self.node_timeout_ms = node_timeout_ms
        # Deadline of every wait: generous, a loaded 2-core machine can be slow to elect.
        self.timeout = timeout
        self.servers: list[RedisServer] = []
        self._dir: Path | None = None
        self._ids: dict[int, str] = {}  # port -> node id (kept in nodes.conf across restarts)
        # master id -> its replicas' ids, as last seen while the cluster was healthy: which
        # replica may take over a killed master.
        self._replicas_seen: dict[str, list[str]] = {}

    # -- addresses -------------------------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node; redis-py discovers the topology from any live one."""
        return [(LOOPBACK, server.port) for server in self.servers]

    @property
    def nodes(self) -> list[str]:
        """ "host:port" of every node, the form of a node-list setting."""
        return [f"{host}:{port}" for host, port in self.startup_nodes]

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port> of a running master (the first by slot order)."""
        return f"redis://{LOOPBACK}:{self.masters()[0].port}"

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise RedisClusterError("cluster has not been started yet: no data dir")
        return self._dir

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RedisClusterHarness:
        """Start every node, create the cluster and wait until it is healthy. Returns self."""
        if self.servers:
            raise RedisClusterError("cluster already started")
        self._dir = Path(tempfile.mkdtemp(prefix="crowd-redis-cluster-"))
        _live.add(self)
        try:
            total = self.master_count * (1 + self.replicas_per_master)
            for index in range(total):
                self.servers.append(self._start_node(index))
            for server in self.servers:
                self._ids[server.port] = self._node_id_of(server)
            # redis-cli makes the first `masters` addresses the masters (all share one IP).
            self._redis_cli(
                "--cluster",
                "create",
                *self.nodes,
                "--cluster-replicas",
                str(self.replicas_per_master),
                "--cluster-yes",
            )
            self.await_stable()
        except BaseException:
            self.cleanup()
            raise
        return self

    def cleanup(self) -> None:
        """Kill every node (a test cluster needs no clean shutdown) and remove the temp dir."""
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.kill()
        self.servers = []
        self._ids.clear()
        self._replicas_seen.clear()
        _live.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisClusterHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        ports = ",".join(str(server.port) for server in self.servers) or "not started"
        return f"<RedisClusterHarness {self.master_count}x{1 + self.replicas_per_master} {ports}>"

    # -- clients ---------------------------------------------------------------------------------

    def client(self, **kwargs: object) -> sync_cluster.RedisCluster:
        """A synchronous redis-py cluster client that rides out a failover (caller closes it)."""
        options: dict[str, object] = {"retry": Retry(*self._client_retry_policy())}
        options.update(kwargs)
        return sync_cluster.RedisCluster(
            startup_nodes=[
                sync_cluster.ClusterNode(host, port) for host, port in self.startup_nodes
            ],
            **options,  # type: ignore[arg-type]
        )

    def async_client(self, **kwargs: object) -> async_cluster.RedisCluster:
        """An asyncio redis-py cluster client that rides out a failover (caller acloses it)."""
        options: dict[str, object] = {"retry": AsyncRetry(*self._client_retry_policy())}
        options.update(kwargs)
        return async_cluster.RedisCluster(
            startup_nodes=[
                async_cluster.ClusterNode(host, port) for host, port in self.startup_nodes
            ],
            **options,  # type: ignore[arg-type]
        )

    @staticmethod
    def _client_retry_policy() -> tuple[ExponentialBackoff, int]:
        # Enough attempts to cover a failover (node timeout + election) on a slow machine;
        # between attempts redis-py refreshes the slot map and follows MOVED/ASK.
        return ExponentialBackoff(cap=1.0, base=0.05), 20

    # -- topology --------------------------------------------------------------------------------

    def node_id(self, server: RedisServer) -> str:
        """The cluster node id of a server of this cluster."""
        if not any(server is node for node in self.servers):
            raise RedisClusterError(f"{server!r} is not a node of this cluster")
        try:
            return self._ids[server.port]
        except KeyError:
            raise RedisClusterError(f"{server!r} is not a node of this cluster") from None

    def server_of(self, node_id: str) -> RedisServer:
        for server in self.servers:
            if self._ids.get(server.port) == node_id:
                return server
        raise RedisClusterError(f"no node with id {node_id} in this cluster")

    def masters(self) -> list[RedisServer]:
        """Running masters that own slots, ordered by their lowest slot."""
        views = self._view()
        owners = [
            view for view in views.values() if view.is_master and view.slots and not view.failed
        ]
        owners.sort(key=lambda view: view.slots[0][0])
        return [self.server_of(view.node_id) for view in owners if self._running(view.node_id)]

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """Running replicas of `master`, in port order."""
        master_id = self.node_id(master)
        return [
            self.server_of(view.node_id)
            for view in sorted(self._view().values(), key=lambda view: view.port)
            if view.master_id == master_id and not view.failed and self._running(view.node_id)
        ]

    def master_of_key(self, key: str | bytes) -> RedisServer:
        """The master serving `key` now: CLUSTER KEYSLOT, then CLUSTER SLOTS."""
        with self._any_live_client() as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_replicas in client.execute_command("CLUSTER SLOTS"):
                if int(start) <= slot <= int(end):
                    return self._server_on_port(int(master[1]))
        raise RedisClusterError(f"slot {slot} of {key!r} is not served by any master")

    # -- faults ----------------------------------------------------------------------------------

    def kill_master(self, index: int) -> RedisServer:
        """SIGKILL masters()[index] (a crash) and return it; see await_failover()."""
        self.await_stable()  # remembers which replicas may take over
        master = self.masters()[index]
        master.kill()
        return master

    def await_failover(self, old_master: RedisServer) -> RedisServer:
        """Wait until a replica of `old_master` is promoted and every live node is healthy.

        Returns the promoted node. `old_master` must have been a master with a replica the last
        time the harness saw the cluster healthy (start, await_stable, kill_master).
        """
        old_id = self.node_id(old_master)
        candidates = self._replicas_seen.get(old_id, [])
        if not candidates:
            raise RedisClusterError(f"{old_master!r} had no replica that could take over")

        def promoted() -> RedisServer:
            self._check_healthy()
            for replica_id in candidates:
                if not self._running(replica_id):
                    continue
                server = self.server_of(replica_id)
                role = self._role(server)
                if role == "master" and self._view_of(server)[replica_id].slots:
                    return server
            raise _NotYet(f"no replica of {old_id} ({candidates}) has taken over its slots")

        return self._poll(promoted, f"failover of {old_master!r}")

    def restart_node(self, server: RedisServer) -> RedisServer:
        """Start a killed or stopped node again (same port, dir, nodes.conf) and await_stable().

        A former master whose replica took over comes back as a replica of the new master.
        """
        if server not in self.servers:
            raise RedisClusterError(f"{server!r} is not a node of this cluster")
        if not server.is_running:
            server.start()
        self.await_stable()
        return server

    def heal(self) -> None:
        """Bring back every stopped node and wait until the cluster is stable again."""
        for server in self.servers:
            if not server.is_running:
                server.start()
        self.await_stable()

    def reshard(self, source: RedisServer, target: RedisServer, slots: int) -> None:
        """Move `slots` slots (and their keys) from `source` to `target`, then await_stable()."""
        if slots <= 0:
            raise ValueError("slots must be positive")
        self._redis_cli(
            "--cluster",
            "reshard",
            f"{LOOPBACK}:{source.port}",
            "--cluster-from",
            self.node_id(source),
            "--cluster-to",
            self.node_id(target),
            "--cluster-slots",
            str(slots),
            "--cluster-yes",
        )
        self.await_stable()

    def slots(self, master: RedisServer) -> list[int]:
        """The slots `master` owns, in its own view, ascending."""
        view = self._view_of(master)[self.node_id(master)]
        return [slot for start, end in view.slots for slot in range(start, end + 1)]

    def slot_count(self, master: RedisServer) -> int:
        """How many slots `master` owns, in its own view."""
        return self._view_of(master)[self.node_id(master)].slot_count

    # -- waits -----------------------------------------------------------------------------------

    def await_stable(self) -> None:
        """Wait until every running node is healthy and `redis-cli --cluster check` passes.

        Healthy: cluster_state ok with all slots assigned on every running node, all of them
        agree on who serves each slot, and every replica's link to its master is up.
        """

        def stable() -> None:
            self._check_healthy()
            check = self._run_cli("--cluster", "check", self._live_address())
            if check.returncode != 0 or "[ERR]" in check.stdout:
                raise _NotYet(f"redis-cli --cluster check: {_tail(check.stdout)}")

        self._poll(stable, "a stable cluster")

    def await_replicated(self) -> None:
        """Wait until every running replica has processed its master's replication stream."""

        def caught_up() -> None:
            for master in self.masters():
                offset = int(self._replication_info(master)["master_repl_offset"])
                for replica in self.replicas_of(master):
                    seen = self._replication_info(replica)
                    if seen.get("master_link_status") != "up":
                        raise _NotYet(f"{replica!r}: link to its master is not up")
                    if int(seen.get("slave_repl_offset", -1)) < offset:
                        raise _NotYet(f"{replica!r} behind {master!r} (offset {offset})")

        self._poll(caught_up, "replicas caught up")

    def flushall(self) -> None:
        """FLUSHALL on every running master (replicas follow through replication)."""
        for master in self.masters():
            self._command(master, "FLUSHALL")

    # -- internals -------------------------------------------------------------------------------

    def _start_node(self, index: int) -> RedisServer:
        assert self._dir is not None
        node_dir = self._dir / f"node-{index}"
        last_error: Exception | None = None
        for _attempt in range(10):
            port, bus_port = free_port(), free_port()
            if port == bus_port:
                continue
            server = RedisServer(
                appendonly=self.appendonly,
                port=port,
                data_dir=node_dir,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(bus_port),
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--cluster-announce-ip", LOOPBACK,
                    # A replica may always take over, however long it was cut off (a loaded
                    # machine can stall the replication link for a while).
                    "--cluster-replica-validity-factor", "0",
                    # Full syncs start at once instead of waiting 5 s for more replicas.
                    "--repl-diskless-sync-delay", "0",
                ),
            )  # fmt: skip
            try:
                return server.start()
            except RedisServerError as exc:
                # One of the two ports was taken meanwhile: try a fresh pair.
                last_error = exc
                server.kill()
                if "address already in use" not in str(exc).lower():
                    break
        raise RedisClusterError(f"cluster node {index} failed to start: {last_error}")

    def _node_id_of(self, server: RedisServer) -> str:
        node_id = self._command(server, "CLUSTER", "MYID")
        return node_id.decode() if isinstance(node_id, bytes) else str(node_id)

    def _running(self, node_id: str) -> bool:
        try:
            return self.server_of(node_id).is_running
        except RedisClusterError:
            return False

    def _server_on_port(self, port: int) -> RedisServer:
        for server in self.servers:
            if server.port == port:
                return server
        raise RedisClusterError(f"no node of this cluster on port {port}")

    def _live_servers(self) -> list[RedisServer]:
        live = [server for server in self.servers if server.is_running]
        if not live:
            raise RedisClusterError("no node of the cluster is running")
        return live

    def _live_address(self) -> str:
        return f"{LOOPBACK}:{self._live_servers()[0].port}"

    @contextlib.contextmanager
    def _client_for(self, server: RedisServer) -> Iterator[redis.Redis]:
        client = redis.Redis(
            host=LOOPBACK, port=server.port, socket_timeout=5, socket_connect_timeout=5
        )
        try:
            yield client
        finally:
            client.close()

    def _any_live_client(self) -> contextlib.AbstractContextManager[redis.Redis]:
        return self._client_for(self._live_servers()[0])

    def _command(self, server: RedisServer, *args: str) -> bytes:
        with self._client_for(server) as client:
            reply = client.execute_command(*args)
        return reply if isinstance(reply, bytes) else str(reply).encode()

    def _replication_info(self, server: RedisServer) -> dict[str, str]:
        with self._client_for(server) as client:
            info = client.info("replication")
        return {str(key): str(value) for key, value in info.items()}

    def _view_of(self, server: RedisServer) -> dict[str, _NodeView]:
        text = self._command(server, "CLUSTER", "NODES").decode()
        return _parse_cluster_nodes(text)

    def _view(self) -> dict[str, _NodeView]:
        """CLUSTER NODES as the first running node sees it."""
        return self._view_of(self._live_servers()[0])

    def _role(self, server: RedisServer) -> str:
        with self._client_for(server) as client:
            role = client.execute_command("ROLE")
        name = role[0]
        return name.decode() if isinstance(name, bytes) else str(name)

    def _check_healthy(self) -> None:
        """Raise _NotYet unless every running node is healthy and they all agree."""
        live = self._live_servers()
        topologies: dict[int, list[tuple[str, bool, str | None, tuple[tuple[int, int], ...]]]] = {}
        for server in live:
            try:
                info = _info_fields(self._command(server, "CLUSTER", "INFO").decode())
                views = self._view_of(server)
            except redis.RedisError as exc:
                raise _NotYet(f"{server!r} does not answer: {exc}") from exc
            if info.get("cluster_state") != "ok":
                raise _NotYet(f"{server!r}: cluster_state {info.get('cluster_state')}")
            if info.get("cluster_slots_assigned") != str(SLOT_COUNT):
                raise _NotYet(f"{server!r}: {info.get('cluster_slots_assigned')} slots assigned")
            if info.get("cluster_known_nodes") != str(len(self.servers)):
                raise _NotYet(f"{server!r} knows {info.get('cluster_known_nodes')} nodes")
            # Who is master of what, as this node sees it. Gossip spreads a role change (a
            # replica attached, a failover) node by node: all views must agree, or a client
            # could be sent back and forth.
            topologies[server.port] = sorted(
                (view.node_id, view.is_master, view.master_id, view.slots)
                for view in views.values()
            )
            for view in views.values():
                if view.is_master and view.slots and not self._running(view.node_id):
                    raise _NotYet(f"{server!r} still routes slots to stopped {view.node_id}")
                if view.is_master and view.slots and view.failed:
                    raise _NotYet(f"{server!r} sees slot owner {view.node_id} failing")
                if "myself" in view.flags and not view.is_master:
                    self._check_replica_link(server)
        agreed, *others = topologies.values()
        if any(topology != agreed for topology in others):
            raise _NotYet("the nodes do not agree yet on the roles and slots of every node")
        owners = [
            (node_id, slots) for node_id, is_master, _, slots in agreed if is_master and slots
        ]
        if sum(end - start + 1 for _, slots in owners for start, end in slots) != SLOT_COUNT:
            raise _NotYet("not every slot has exactly one master")
        if len(live) == len(self.servers):
            # The whole cluster is up: it has its full shape again.
            for node_id, _ in owners:
                replicas = [entry for entry in agreed if entry[2] == node_id]
                if len(replicas) != self.replicas_per_master:
                    raise _NotYet(f"master {node_id} has {len(replicas)} replicas")
        self._remember_replicas(self._view_of(live[0]))

    def _check_replica_link(self, replica: RedisServer) -> None:
        with self._client_for(replica) as client:
            role = client.execute_command("ROLE")
        # ROLE on a replica: [b"slave", master_host, master_port, state, offset]
        state = role[3].decode() if isinstance(role[3], bytes) else str(role[3])
        if state != "connected":
            raise _NotYet(f"{replica!r}: replication link {state}")

    def _remember_replicas(self, views: dict[str, _NodeView]) -> None:
        replicas: dict[str, list[str]] = {}
        for view in views.values():
            if view.master_id is not None and not view.failed:
                replicas.setdefault(view.master_id, []).append(view.node_id)
        self._replicas_seen = replicas

    def _poll(self, attempt: Callable[[], T], what: str) -> T:
        """Call `attempt` until it stops raising _NotYet; RedisClusterError after the deadline."""
        retrying = Retrying(
            stop=stop_after_delay(self.timeout),
            wait=wait_exponential(multiplier=0.01, max=0.25),
            retry=retry_if_exception_type((_NotYet, redis.ConnectionError, redis.TimeoutError)),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except (_NotYet, redis.ConnectionError, redis.TimeoutError) as exc:
            raise RedisClusterError(f"no {what} within {self.timeout}s: {exc}") from exc

    def _run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [find_redis_cli(), *args],
            capture_output=True,
            text=True,
            timeout=self.timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def _redis_cli(self, *args: str) -> str:
        result = self._run_cli(*args)
        if result.returncode != 0 or "[ERR]" in result.stdout:
            raise RedisClusterError(
                f"redis-cli {' '.join(args[:2])} failed (exit {result.returncode}): "
                f"{_tail(result.stdout + result.stderr)}"
            )
        return result.stdout


def _tail(text: str, lines: int = 12) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


@atexit.register
def _kill_leftovers() -> None:
    """Never leave cluster nodes or their temp dirs behind, even if a test forgot cleanup()."""
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.cleanup()
