"""Fault drill: live `gis-grid serve` replicas on a PostGIS store while the database misbehaves.

Runs against its OWN loopback PostgreSQL cluster (same binaries as scripts/postgres.sh, a free
port, a temporary data directory that is removed afterwards), never the shared test cluster.
The store is the toy district (gis_grid.testing); the figures are about failure handling, not
scale. A load generator (threads, httpx) calls /locate (served from the in-memory atlas) and
/grids/{code}/history (a database route) with a key verified just before each fault.

1. PostgreSQL stopped for --outage-s (30) seconds and restarted under load: answers by status,
   latency median/p99 before, during and after, and the time to the first good database answer.
2. A listener that accepts and never answers: replica C reaches the database through a proxy
   that, on cue, drops every connection and then accepts new ones without a byte in reply.
3. A replica killed (SIGKILL) inside an apply's transaction (held at its audit append by an
   advisory lock the drill takes): the apply must leave nothing; then an apply through the
   restarted replica, and the time until the other replica serves the new version.
4. A NOTIFY flood (200 hints of the current version, 200 of a version that does not exist):
   reloads (reads of the divisions table) and /locate latency before and during.

    nice python bench/faults.py            # about four minutes
    nice python bench/faults.py --outage-s 5 --only outage
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from timing import free_port  # noqa: E402

PGBIN = Path("/usr/lib/postgresql/15/bin")
WEST = "370402001001"
G1, G2 = WEST + "001", WEST + "002"
PROBE = {"lon": 117.505, "lat": 34.805}  # in G2 before the drill's plan is applied, in G1 after
FAULTS = ("outage", "blackhole", "kill", "notify")


# ------------------------------------------------------------------ the private cluster
class Cluster:
    """A throw-away PostgreSQL 15 on 127.0.0.1:``port`` with its data under ``root``."""

    def __init__(self, root: Path, port: int):
        self.data, self.port = root / "pg", port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _pg(self, *args: str) -> None:
        cmd = [str(PGBIN / args[0]), *args[1:]]
        if os.getuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        self.data.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(self.data.parent, "postgres")
            shutil.chown(self.data, "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.data}'\n"
                    "max_connections = 100\nshared_buffers = 64MB\nfsync = off\nsynchronous_commit = off\n")

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, db_url: str, query: str, params=None):
        import psycopg
        with psycopg.connect(db_url, autocommit=True) as c:
            return c.execute(query, params).fetchall()


# ------------------------------------------------------------------ a proxy that can turn into a black hole
class Proxy:
    """TCP forwarder to ``upstream``; :meth:`blackhole` drops every connection and then accepts
    new ones without ever answering (a listener that accepts and never replies)."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hole = False
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            with self.lock:
                self.open.append(client)
                if self.hole:
                    continue  # held open, never answered
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.append(up)
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def blackhole(self, on: bool) -> None:
        with self.lock:
            self.hole = on
            if on:
                for s in self.open:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass
                self.open.clear()


# ------------------------------------------------------------------ replicas and load
class Replica:
    def __init__(self, name: str, db: str, logdir: Path):
        self.name, self.db, self.logdir = name, db, logdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, token: str) -> float:
        """Start and wait until it answers; returns the seconds that took."""
        import httpx
        t0 = time.monotonic()
        log = open(self.logdir / f"{self.name}.log", "ab")
        env = dict(os.environ, GIS_GRID_LOG_LEVEL="warning", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen([sys.executable, "-m", "gis_grid.cli", "serve", "--db", self.db,
                                      "--port", str(self.port)], cwd=ROOT, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.monotonic() - t0 < 120:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited; see {log.name}")
            try:
                if httpx.get(self.base + "/capabilities", headers=auth(token), timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.name} did not start")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Load:
    """``threads`` threads spread over ``targets`` ((name, url) pairs), each calling its own target,
    so a route that hangs does not starve the others; every answer is recorded as (start, end,
    name, status), status an HTTP code or the exception's name, and counted in the phase it started in."""

    def __init__(self, targets: list[tuple[str, str]], token: str, threads: int = 4, pause_s: float = 0.02,
                 timeout_s: float = 30.0):
        self.targets, self.token, self.pause_s, self.timeout_s = targets, token, pause_s, timeout_s
        self.records: list[tuple[float, float, str, object]] = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, i: int) -> None:
        import httpx
        with httpx.Client(headers=auth(self.token), timeout=self.timeout_s) as client:
            name, url = self.targets[i % len(self.targets)]
            while self.running:
                t0 = time.monotonic()
                try:
                    status: object = client.get(url).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self.lock:
                    self.records.append((t0, time.monotonic(), name, status))
                time.sleep(self.pause_s)

    def stop(self) -> None:
        self.running = False
        for t in self.threads:
            t.join(self.timeout_s + 5)

    def window(self, name: str, t0: float, t1: float) -> list[tuple[float, float, str, object]]:
        with self.lock:
            return [r for r in self.records if r[2] == name and t0 <= r[0] < t1]


def summary(records) -> dict:
    """Answers by status and latency (ms) median/p99/max of a window of records."""
    by: dict[str, int] = {}
    for r in records:
        by[str(r[3])] = by.get(str(r[3]), 0) + 1
    lat = sorted((r[1] - r[0]) * 1e3 for r in records)
    if not lat:
        return {"n": 0, "status": by}
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    return {"n": len(lat), "status": by, "median_ms": round(statistics.median(lat), 1), "p99_ms": round(p99, 1),
            "max_ms": round(lat[-1], 1)}


def row(fault: str, phase: str, route: str, s: dict) -> str:
    status = ", ".join(f"{k}: {v}" for k, v in sorted(s["status"].items()))
    return (f"| {fault} | {phase} | {route} | {s['n']} | {status} | {s.get('median_ms', '-')} | "
            f"{s.get('p99_ms', '-')} | {s.get('max_ms', '-')} |")


HEADER = ("| fault | phase | route | requests | answers | median ms | p99 ms | max ms |\n"
          "|---|---|---|---|---|---|---|---|")


def routes(replica: Replica) -> list[tuple[str, str]]:
    return [("/locate", f"{replica.base}/locate?lon={PROBE['lon']}&lat={PROBE['lat']}"),
            ("/grids/{code}/history", f"{replica.base}/grids/{G1}/history")]


def phases(load: Load, fault: str, marks: list[tuple[str, float, float]], out: list[str]) -> None:
    for phase, t0, t1 in marks:
        for name, _ in load.targets:
            out.append(row(fault, phase, name, summary(load.window(name, t0, t1))))


# ------------------------------------------------------------------ the faults
def drill_outage(cluster: Cluster, a: Replica, token: str, outage_s: float, out: list[str], figures: dict) -> None:
    load = Load(routes(a), token)
    time.sleep(10)
    t_stop = time.monotonic()
    cluster.stop()
    time.sleep(outage_s)
    cluster.start()
    t_up = time.monotonic()
    time.sleep(15)
    load.stop()
    t_end = time.monotonic()
    phases(load, f"PostgreSQL down {outage_s:g} s", [("before", t_stop - 10, t_stop), ("outage", t_stop, t_up),
                                                      ("after restart", t_up, t_end)], out)
    good = [r for r in load.records if r[2] == "/grids/{code}/history" and r[0] >= t_up and r[3] == 200]
    figures["outage_recovery_s"] = round(min(r[1] for r in good) - t_up, 2) if good else None
    bad = [r for r in load.window("/locate", t_stop - 10, t_end) if r[3] != 200]
    figures["outage_locate_non_200"] = len(bad)


def drill_blackhole(proxy: Proxy, c: Replica, token: str, out: list[str], figures: dict) -> None:
    load = Load(routes(c), token)
    time.sleep(5)
    t_hole = time.monotonic()
    proxy.blackhole(True)
    time.sleep(25)
    proxy.blackhole(False)
    t_back = time.monotonic()
    time.sleep(10)
    load.stop()
    t_end = time.monotonic()
    phases(load, "listener never answers", [("before", t_hole - 5, t_hole), ("black hole", t_hole, t_back),
                                            ("restored", t_back, t_end)], out)
    hole_db = load.window("/grids/{code}/history", t_hole, t_back)
    figures["blackhole_db_max_ms"] = summary(hole_db).get("max_ms")
    figures["blackhole_locate_non_200"] = sum(1 for r in load.window("/locate", t_hole, t_back) if r[3] != 200)
    good = [r for r in load.records if r[2] == "/grids/{code}/history" and r[0] >= t_back and r[3] == 200]
    figures["blackhole_recovery_s"] = round(min(r[1] for r in good) - t_back, 2) if good else None


def _locate(replica: Replica, token: str) -> dict:
    import httpx
    return httpx.get(f"{replica.base}/locate", params=PROBE, headers=auth(token), timeout=10).json()


def drill_kill(cluster: Cluster, db: str, a: Replica, b: Replica, reader: str, planner: str, out: list[str],
               figures: dict) -> None:
    import httpx
    import psycopg

    from gis_grid.testing import X0, XM, Y0, Y1
    import shapely
    grids = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(g))}
        for g in (shapely.box(X0, 34.804, XM, Y1), shapely.box(X0, Y0, XM, 34.804))]}
    r = httpx.post(f"{a.base}/plans", json={"community": WEST, "grids": grids}, headers=auth(planner), timeout=30)
    r.raise_for_status()
    plan_id, version = r.json()["id"], int(r.headers["etag"].strip('"'))
    audit_before = cluster.sql(db, "SELECT count(*) FROM audit_log")[0][0]

    # hold the audit chain's lock: the apply then waits inside its transaction, after its writes
    holder = psycopg.connect(db, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(hashtext('gis_grid.audit_log'))")
    threading.Thread(target=lambda: _quiet_post(f"{a.base}/plans/{plan_id}/apply", planner, version),
                     daemon=True).start()
    waited = time.monotonic()
    while not cluster.sql(db, "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory'"):
        if time.monotonic() - waited > 20:
            raise RuntimeError("the apply never reached its audit append")
        time.sleep(0.05)
    a.kill()
    holder.execute("SELECT pg_advisory_unlock(hashtext('gis_grid.audit_log'))")
    holder.close()
    time.sleep(2)
    stored = int(cluster.sql(db, "SELECT value FROM meta WHERE key = 'atlas_version'")[0][0])
    status = cluster.sql(db, "SELECT status FROM plans WHERE id = %s", (plan_id,))[0][0]
    audit_after = cluster.sql(db, "SELECT count(*) FROM audit_log")[0][0]
    seen = _locate(b, reader)
    figures["kill_rolled_back"] = (stored == version and status == "draft" and audit_after == audit_before
                                   and seen["atlas_version"] == version and seen["grid"]["code"] == G2)
    out.append(f"- killed inside the apply: stored version {stored} (was {version}), plan {status}, audit records "
               f"{audit_before} -> {audit_after}, replica B serves v{seen['atlas_version']} ({seen['grid']['code']})")

    figures["kill_restart_s"] = round(a.start(reader), 2)
    t0 = time.monotonic()
    r = httpx.post(f"{a.base}/plans/{plan_id}/apply", headers={**auth(planner), "If-Match": f'"{version}"'},
                   timeout=60)
    t_applied = time.monotonic()
    r.raise_for_status()
    while True:
        seen = _locate(b, reader)
        if seen["atlas_version"] == version + 1:
            break
        if time.monotonic() - t_applied > 30:
            raise RuntimeError("replica B never swapped in the applied plan")
        time.sleep(0.02)
    t_swapped = time.monotonic()
    figures["kill_apply_s"] = round(t_applied - t0, 2)
    figures["kill_swap_s"] = round(t_swapped - t_applied, 2)
    out.append(f"- then applied through the restarted replica A in {figures['kill_apply_s']} s; replica B served "
               f"v{seen['atlas_version']} ({seen['grid']['code']}) {figures['kill_swap_s']} s after the apply answered")


def _quiet_post(url: str, token: str, version: int) -> None:
    import httpx
    try:
        httpx.post(url, headers={**auth(token), "If-Match": f'"{version}"'}, timeout=60)
    except httpx.HTTPError:
        pass  # its replica is killed under it


def _division_reads(cluster: Cluster, db: str) -> int:
    return int(cluster.sql(db, "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                               "WHERE relname = 'divisions'")[0][0])


def drill_notify(cluster: Cluster, db: str, a: Replica, b: Replica, token: str, out: list[str], figures: dict) -> None:
    load = Load([("/locate A", routes(a)[0][1]), ("/locate B", routes(b)[0][1])], token)
    time.sleep(12)  # idle pooled sessions report their table statistics within about 10 s
    reads0, cpu0 = _division_reads(cluster, db), [r.cpu_s() for r in (a, b)]
    t_base = time.monotonic()
    time.sleep(10)
    cpu_base = [r.cpu_s() - c for r, c in zip((a, b), cpu0)]
    current = cluster.sql(db, "SELECT value FROM meta WHERE key = 'atlas_version'")[0][0]
    t_flood = time.monotonic()
    cpu1 = [r.cpu_s() for r in (a, b)]
    import psycopg
    with psycopg.connect(db, autocommit=True) as c:
        for payload in [current] * 200 + ["999999"] * 200:
            c.execute("SELECT pg_notify('gis_grid_atlas', %s)", (payload,))
    flood_s = time.monotonic() - t_flood
    time.sleep(10)
    t_end = time.monotonic()
    cpu_flood = [r.cpu_s() - c for r, c in zip((a, b), cpu1)]
    load.stop()
    time.sleep(12)
    reads = _division_reads(cluster, db) - reads0
    phases(load, "400 NOTIFYs", [("before", t_base, t_flood), ("flood + 10 s", t_flood, t_end)], out)
    base, flood = summary(load.window("/locate A", t_base, t_flood)), summary(load.window("/locate A", t_flood, t_end))
    figures["notify_sent_in_s"] = round(flood_s, 2)
    figures["notify_division_reads"] = reads
    figures["notify_cpu_s_base_vs_flood"] = [[round(x, 2) for x in cpu_base], [round(x, 2) for x in cpu_flood]]
    figures["notify_locate_median_ratio"] = round(flood["median_ms"] / base["median_ms"], 2)
    figures["notify_locate_p99_ratio"] = round(flood["p99_ms"] / base["p99_ms"], 2)


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--outage-s", type=float, default=30.0, help="how long PostgreSQL stays stopped")
    parser.add_argument("--only", choices=FAULTS, action="append", help="run only these faults (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) afterwards")
    args = parser.parse_args(argv)
    only = args.only or list(FAULTS)
    if not (PGBIN / "initdb").exists():
        print(f"needs PostgreSQL 15 in {PGBIN}: run scripts/postgres.sh start once to install it", file=sys.stderr)
        return 2

    from gis_grid.security.keys import create_key
    from gis_grid.testing import make_toy_store
    root = Path(tempfile.mkdtemp(prefix="gis_grid_faults_", dir="/var/tmp"))
    cluster = Cluster(root, free_port())
    replicas: list[Replica] = []
    proxy = None
    out: list[str] = [HEADER]
    notes: list[str] = []
    figures: dict = {}
    try:
        cluster.init()
        cluster.start()
        db = cluster.url.rsplit("/", 1)[0] + "/faults"
        with make_toy_store(db) as store:
            reader = create_key(store, "command_center", "370402", days=1, note="fault drill")[1]
            planner = create_key(store, "planner", "370402", days=1, note="fault drill")[1]
        a, b = Replica("a", db, root), Replica("b", db, root)
        replicas += [a, b]
        figures["replica_start_s"] = [round(a.start(reader), 2), round(b.start(reader), 2)]
        if "outage" in only:
            drill_outage(cluster, a, reader, args.outage_s, out, figures)
        if "blackhole" in only:
            proxy = Proxy(cluster.port)
            c = Replica("c", db.replace(f":{cluster.port}/", f":{proxy.port}/"), root)
            replicas.append(c)
            c.start(reader)
            drill_blackhole(proxy, c, reader, out, figures)
            c.stop()
        if "notify" in only:
            drill_notify(cluster, db, a, b, reader, out, figures)
        if "kill" in only:
            drill_kill(cluster, db, a, b, reader, planner, notes, figures)
    finally:
        for r in replicas:
            r.stop()
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass
        if args.keep:
            print(f"logs and data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("\n".join(out))
    if notes:
        print("\n".join(notes))
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
