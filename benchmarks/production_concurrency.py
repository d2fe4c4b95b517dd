"""Concurrency on the production layout: the same partition at once, a backfill over the sensor, votes mid-run.

On the documented production instance (``deploy/dagster-postgres.yaml``: runs, events and
schedules in PostgreSQL, the queued run coordinator, run monitoring), with ``dagster dev``'s
daemon and the webserver, foureyes' warehouse and control plane on PostgreSQL, and the
shipped jobs on Dagster's default executor (multiprocess: every step in its own process),
three scenarios race runs of the same partitions against each other:

* ``same_partition``: ``market_data_daily`` and ``foureyes_daily`` for one partition, each
  launched ``--launches`` times at once through GraphQL; every market-data run that ends
  also makes the market-data sensor launch the agents again;
* ``backfill_over_sensor``: an asset backfill over ``--partitions`` business days, launched
  through GraphQL as the UI launches it, while ``market_data_daily`` runs for the same days
  end and the sensor launches the agents for each;
* ``approvals_mid_run``: ``foureyes_daily`` relaunched for those days while two
  authenticated principals decide every pending approval through ``foureyes approvals``;
  the approvals sensor then launches the executors of the granted ones.

Then it audits Dagster's record, the control plane and the books: no run failed, each
idempotency key booked once and only with a receipt, every approved action of the latest
supervision of each partition delivered (or cancelled with a reason), every granted
approval delivered once, nothing left queued, delivering or in doubt, and each partition's
stored proposals version supervised. The figures (counts, and the wall time of each
scenario) go to ``benchmarks/results/concurrency.md`` (and ``.json``).

    python -m benchmarks.production_concurrency [--partitions 20] [--launches 4] [--pg-url URL]

(run from the repository root: it drives ``dagster dev`` through ``tests/dagster_dev.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa
from dagster_graphql import DagsterGraphQLClient

from benchmarks.bench_results import RESULTS
from benchmarks.local_postgres import fresh_database, start_postgres
from foureyes.examples.finance_desk.calendar import business_days_ending
from foureyes.examples.finance_desk.definitions import AGENTS, BOOKS_TABLES, DAILY_JOB, MARKET_DATA_JOB
from foureyes.execute.executor import executable_decisions
from foureyes.resources.control_plane.approvals import APPROVED
from foureyes.resources.control_plane.outbox import CANCELLED, DELIVERED, DELIVERING, FAILED, IN_DOUBT, QUEUED
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import receipts, supervisions, tool_calls
from foureyes.resources.engine import engine_for
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.dagster_dev import LAUNCH_BACKFILL, Webserver, dagster_dev, wait_for

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "deploy" / "dagster-postgres.yaml"
SAME_PARTITION_DAY = "2026-11-19"
LAST_BACKFILL_DAY = "2026-11-13"  # the backfill's days end here, before the same-partition day
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""
PARTITIONED_ASSETS = "{ assetNodes { assetKey { path } isPartitioned } }"
APPROVERS = ("alice", "bob")  # two people: the four-eyes approvals need both
SETTLE_TIMEOUT_S = 1800.0
MULTIPROCESS = "%multiprocess executor%"
STALE = "is stale"  # the store's refusal of a vote on a superseded proposals version


@dataclass(frozen=True)
class Stores:
    """The layout's two PostgreSQL databases: Dagster's instance, and foureyes' warehouse and control plane."""

    dagster_url: str  # bare postgresql://, as deploy/dagster-postgres.yaml documents it
    foureyes_url: str

    @classmethod
    def fresh(cls, server_url: str, prefix: str) -> Stores:
        dagster = sa.make_url(fresh_database(server_url, f"{prefix}_dagster")).set(drivername="postgresql")
        return cls(dagster.render_as_string(hide_password=False), fresh_database(server_url, f"{prefix}_foureyes"))

    def settings(self) -> dict[str, str]:
        return {
            "FOUREYES_DAGSTER_PG_URL": self.dagster_url,
            "FOUREYES_WAREHOUSE_URL": self.foureyes_url,
            "FOUREYES_CONTROL_URL": self.foureyes_url,
        }


@contextmanager
def production_layout(stores: Stores, home: Path) -> Iterator[Webserver]:
    """``dagster dev`` (webserver and daemon) on the production instance, foureyes' stores on PostgreSQL."""
    with dagster_dev(home, INSTANCE, **stores.settings()) as server:
        yield server


# -- what Dagster recorded -----------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    status: str
    tags: dict[str, str]
    start: float | None
    end: float | None

    @property
    def partition(self) -> str | None:
        return self.tags.get("dagster/partition")


def recorded_runs(stores: Stores) -> dict[str, RunRecord]:
    """Every run of the instance, read from Dagster's own tables in PostgreSQL."""
    with engine_for(stores.dagster_url).connect() as conn:
        rows = conn.exec_driver_sql("SELECT run_id, pipeline_name, status, start_time, end_time FROM runs").all()
        tags: dict[str, dict[str, str]] = {}
        for run_id, key, value in conn.exec_driver_sql("SELECT run_id, key, value FROM run_tags"):
            tags.setdefault(run_id, {})[key] = value
    return {r[0]: RunRecord(r[0], r[1], r[2], tags.get(r[0], {}), r[3], r[4]) for r in rows}


def failure_messages(stores: Stores, run_ids: Sequence[str]) -> dict[str, str]:
    """The first step (or run) failure message of each of these runs."""
    if not run_ids:
        return {}
    query = sa.text(
        "SELECT run_id, step_key, event FROM event_logs WHERE run_id IN :ids "
        "AND dagster_event_type IN ('STEP_FAILURE', 'PIPELINE_FAILURE', 'RUN_FAILURE') ORDER BY id"
    ).bindparams(sa.bindparam("ids", expanding=True))
    found: dict[str, str] = {}
    with engine_for(stores.dagster_url).connect() as conn:
        for run_id, step, event in conn.execute(query, {"ids": list(run_ids)}):
            if run_id not in found:
                found[run_id] = f"{step or 'run'}: {_error_of(event)}"
    return found


def _error_of(event: str) -> str:
    """The innermost error message of a serialized failure event (Dagster nests the cause)."""
    messages = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("message"), str) and value.get("__class__") == "SerializableErrorInfo":
                messages.append(value["message"].strip())
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(json.loads(event))
    return (messages[-1] if messages else "no error recorded").splitlines()[0][:300]


def multiprocess_runs(stores: Stores) -> set[str]:
    """Runs whose steps Dagster's multiprocess executor ran (its engine event says so)."""
    with engine_for(stores.dagster_url).connect() as conn:
        query = sa.text(
            "SELECT DISTINCT run_id FROM event_logs WHERE dagster_event_type = 'ENGINE_EVENT' AND event LIKE :m"
        )
        return set(conn.execute(query, {"m": MULTIPROCESS}).scalars())


# -- launching through GraphQL -------------------------------------------------------------


def launch_at_once(server: Webserver, job: str, partition: str, times: int) -> list[str]:
    """Submit ``job`` for ``partition`` ``times`` times from as many threads, released together."""
    barrier = threading.Barrier(times)

    def submit(_: int) -> str:
        client = DagsterGraphQLClient("127.0.0.1", port_number=server.port)  # a client holds one connection
        barrier.wait()
        return client.submit_job_execution(job, tags={"dagster/partition": partition})

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(submit, range(times)))


def launch_asset_backfill(server: Webserver, partitions: Sequence[str]) -> str:
    """An asset backfill of every partitioned asset over ``partitions``, as the UI's "Materialize" does."""
    nodes = server.query(PARTITIONED_ASSETS)["assetNodes"]
    selection = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    launched = server.query(LAUNCH_BACKFILL, params={"assetSelection": selection, "partitionNames": list(partitions)})
    result = launched["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"the backfill was not launched: {result}")
    return result["backfillId"]


def backfill_status(server: Webserver, backfill: str) -> str:
    return server.query(BACKFILL_STATUS, id=backfill)["partitionBackfillOrError"]["status"]


# -- approvals decided by authenticated principals -------------------------------------------


@dataclass(frozen=True)
class Vote:
    approval_id: str
    partition: str
    voter: str
    decision: str
    outcome: str  # counted, refused: ...
    at: float


def add_approvers(server: Webserver) -> dict[str, str]:
    """``foureyes principals add`` for each approver; their tokens."""
    tokens = {}
    for name in APPROVERS:
        done = server.foureyes("principals", "add", name, "--scope=read", "--scope=approve")
        if done.returncode != 0:
            raise RuntimeError(f"foureyes principals add {name}: {done.stderr.strip()}")
        tokens[name] = done.stdout.strip().splitlines()[-1]
    return tokens


def pending_approvals(server: Webserver, partitions: Sequence[str]) -> list[dict]:
    listing = server.foureyes("approvals", "list", "--format", "json")
    if listing.returncode != 0:
        raise RuntimeError(f"foureyes approvals list: {listing.stderr.strip()}")
    return [a for a in json.loads(listing.stdout) if a["partition"] in set(partitions)]


def decide_all(server: Webserver, approvals: Sequence[dict], tokens: dict[str, str], workers: int = 2) -> list[Vote]:
    """Approve each approval with as many principals as it needs, approvals side by side.

    Each vote names the digest its voter reviewed (``--digest``); a vote the store refuses
    (superseded meanwhile, already decided) is recorded as refused, with the store's reason.
    """

    def decide(approval: dict) -> list[Vote]:
        votes = []
        for voter in APPROVERS[: approval["required"]]:
            done = server.foureyes(
                "approvals",
                "approve",
                approval["approval_id"],
                "--reason",
                "reviewed during the concurrency run",
                "--digest",
                approval["arguments_digest"],
                FOUREYES_TOKEN=tokens[voter],
            )
            outcome = "counted" if done.returncode == 0 else f"refused: {done.stderr.strip()[:200]}"
            votes.append(Vote(approval["approval_id"], approval["partition"], voter, "approve", outcome, time.time()))
            if done.returncode != 0:
                break
        return votes

    with ThreadPoolExecutor(workers) as pool:
        return [vote for votes in pool.map(decide, approvals) for vote in votes]


# -- the audit -------------------------------------------------------------------------------


@dataclass
class Audit:
    """What the stores hold after a scenario, and every way they break the invariants."""

    agent_partitions: int = 0
    supervisions_of_stored_version: int = 0
    approved_actions: int = 0
    delivered: int = 0
    delivered_for_an_earlier_version: int = 0
    cancelled: dict[str, int] = field(default_factory=dict)
    outbox: dict[str, int] = field(default_factory=dict)
    granted: int = 0
    granted_delivered: int = 0
    granted_superseded: int = 0
    books_rows: int = 0
    receipts: int = 0
    resent_to_target: int = 0
    violations: list[str] = field(default_factory=list)


def audit(stores: Stores, partitions: Sequence[str]) -> Audit:
    """Check the invariants over ``partitions``: no duplicate, nothing lost, every stored version supervised."""
    control = ControlPlaneResource(url=stores.foureyes_url)
    warehouse = SqlWarehouseResource(url=stores.foureyes_url)
    found = Audit()
    outbox = {e.idempotency_key: e for day in partitions for e in control.outbox.find(partition=day)}
    found.outbox = dict(Counter(e.status for e in outbox.values()))
    receipted = _receipts(stores, partitions)
    found.receipts = len(receipted)
    for agent in AGENTS:
        for day in partitions:
            _audit_partition(found, stores, control, warehouse, agent.name, day, outbox)
    _audit_granted(found, control, warehouse, partitions, outbox, receipted)
    for entry in outbox.values():
        if entry.status in (QUEUED, DELIVERING, IN_DOUBT, FAILED):
            found.violations.append(
                f"outbox {entry.idempotency_key[:12]} ({entry.agent} {entry.partition}) left {entry.status}"
            )
        if entry.status == CANCELLED and not entry.last_error:
            found.violations.append(f"outbox {entry.idempotency_key[:12]} cancelled without a reason")
        if entry.status == DELIVERED and entry.idempotency_key not in receipted:
            found.violations.append(f"outbox {entry.idempotency_key[:12]} delivered without a receipt")
    _audit_books(found, stores, partitions, receipted)
    found.resent_to_target = _resent(stores, partitions)
    return found


def _audit_partition(
    found: Audit,
    stores: Stores,
    control: ControlPlaneResource,
    warehouse: SqlWarehouseResource,
    agent: str,
    day: str,
    outbox: dict,
) -> None:
    record = warehouse.partition_record(f"{agent}_proposals", day)
    where = f"{agent} {day}"
    if record is None:
        found.violations.append(f"{where}: no proposals stored")
        return
    found.agent_partitions += 1
    version = record.version
    with engine_for(stores.foureyes_url).connect() as conn:
        supervised = conn.execute(
            sa.select(sa.func.count()).where(
                supervisions.c.agent == agent,
                supervisions.c.partition_key == day,
                supervisions.c.proposals_version == version,
            )
        ).scalar_one()
    found.supervisions_of_stored_version += supervised
    if not supervised:
        found.violations.append(f"{where}: stored proposals version {version[:12]} was never supervised")
        return
    for decision in executable_decisions(control, agent, day, version).decisions:
        found.approved_actions += 1
        key = idempotency_key(agent, day, decision.proposal_id, decision.action)
        entry = outbox.get(key)
        if entry is None:
            found.violations.append(f"{where}: approved {decision.action} {decision.proposal_id[:12]} never queued")
        elif entry.status == DELIVERED:
            found.delivered += 1
            found.delivered_for_an_earlier_version += entry.proposals_version != version
        elif (
            entry.status == CANCELLED
            and entry.proposals_version != version
            and version[:12] not in (entry.last_error or "")
        ):
            found.cancelled[entry.last_error or ""] = found.cancelled.get(entry.last_error or "", 0) + 1
        else:
            found.violations.append(
                f"{where}: approved {decision.action} {decision.proposal_id[:12]} of version {version[:12]} lost: "
                f"its outbox entry (version {entry.proposals_version[:12]}) is {entry.status}"
                + (f" ({entry.last_error})" if entry.last_error else "")
            )


def _audit_granted(
    found: Audit,
    control: ControlPlaneResource,
    warehouse: SqlWarehouseResource,
    partitions: Sequence[str],
    outbox: dict,
    receipted: dict[str, str],
) -> None:
    """Every granted approval delivered once; cancelled only if its proposals version is no longer the stored one."""
    for day in partitions:
        for approval in control.approvals.find(status=APPROVED, partition=day):
            found.granted += 1
            entry = outbox.get(approval.idempotency_key)
            stored = warehouse.partition_record(f"{approval.agent}_proposals", day)
            current = stored is not None and stored.version == approval.proposals_version
            if entry is not None and entry.status == DELIVERED and approval.idempotency_key in receipted:
                found.granted_delivered += 1
            elif entry is not None and entry.status == CANCELLED and entry.last_error and not current:
                found.granted_superseded += 1
            else:
                state = (
                    f"{entry.status} (queued for version {entry.proposals_version[:12]})" if entry else "never queued"
                )
                found.violations.append(
                    f"granted approval {approval.approval_id[:12]} ({approval.agent} {day}, version "
                    f"{approval.proposals_version[:12]}{', the stored one' if current else ''}): its action is {state}"
                )


def _audit_books(found: Audit, stores: Stores, partitions: Sequence[str], receipted: dict[str, str]) -> None:
    """Each key in the books at most once, and exactly the keys that hold a receipt."""
    booked: Counter[str] = Counter()
    engine = engine_for(stores.foureyes_url)
    with engine.connect() as conn:
        for table in sorted(set(BOOKS_TABLES.values())):
            if not sa.inspect(conn).has_table(table):
                continue
            rows = conn.execute(
                sa.text(f'SELECT idempotency_key FROM "{table}" WHERE partition_key IN :days').bindparams(
                    sa.bindparam("days", expanding=True)
                ),
                {"days": list(partitions)},
            ).scalars()
            booked.update(rows)
    found.books_rows = sum(booked.values())
    found.violations += [f"key {k[:12]} booked {n} times" for k, n in booked.items() if n > 1]
    found.violations += [f"key {k[:12]} booked without a receipt" for k in set(booked) - set(receipted)]
    found.violations += [f"receipt {k[:12]} without a booking" for k in set(receipted) - set(booked)]


def _receipts(stores: Stores, partitions: Sequence[str]) -> dict[str, str]:
    with engine_for(stores.foureyes_url).connect() as conn:
        rows = conn.execute(
            sa.select(receipts.c.idempotency_key, receipts.c.target).where(
                receipts.c.partition_key.in_(list(partitions))
            )
        ).all()
    return dict(rows)


def _resent(stores: Stores, partitions: Sequence[str]) -> int:
    """Keys the target was sent more than once (it deduplicated them): at most once, but worth counting."""
    with engine_for(stores.foureyes_url).connect() as conn:
        rows = conn.execute(
            sa.select(tool_calls.c.parameters).where(
                tool_calls.c.stage == "execute", tool_calls.c.partition_key.in_(list(partitions))
            )
        ).scalars()
        sent = Counter(p["idempotency_key"] for p in rows)
    return sum(1 for n in sent.values() if n > 1)


# -- the scenarios ---------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    scenario: str
    partitions: int
    launched: str
    seconds: float
    settled: bool
    runs: dict[str, int]
    multiprocess_runs: int
    failed: list[str]
    votes: dict[str, int]
    refused: list[str]  # votes the store refused, and why: only a stale approval may refuse one
    audit: Audit

    @property
    def holds(self) -> bool:
        stale_only = all(STALE in why for why in self.refused)
        return self.settled and not self.failed and not self.audit.violations and stale_only


def _settled(stores: Stores, before: set[str], also: Callable[[dict[str, RunRecord]], bool]) -> bool:
    runs = recorded_runs(stores)
    new = [r for i, r in runs.items() if i not in before]
    return all(r.status not in IN_PROGRESS for r in new) and also(runs)


def sensor_caught_up(before: set[str]) -> Callable[[dict[str, RunRecord]], bool]:
    """Every market-data run that ended since ``before`` has had its agents launched by the sensor."""

    def caught_up(runs: dict[str, RunRecord]) -> bool:
        ended = {i for i, r in runs.items() if i not in before and r.job == MARKET_DATA_JOB and r.end}
        followed = {r.tags.get("foureyes/market_data_run") for r in runs.values()}
        return ended <= followed

    return caught_up


def _result(
    stores: Stores,
    name: str,
    partitions: Sequence[str],
    launched: str,
    before: set[str],
    started: float,
    settled: bool,
    votes: Sequence[Vote] = (),
) -> ScenarioResult:
    runs = {i: r for i, r in recorded_runs(stores).items() if i not in before}
    failed_ids = [i for i, r in runs.items() if r.status == "FAILURE"]
    messages = failure_messages(stores, failed_ids)
    stepped = multiprocess_runs(stores) & set(runs)
    return ScenarioResult(
        scenario=name,
        partitions=len(partitions),
        launched=launched,
        seconds=round(time.monotonic() - started, 1),
        settled=settled,
        runs=dict(Counter(f"{r.job}:{r.status}" for r in runs.values())),
        multiprocess_runs=len(stepped),
        failed=[f"{runs[i].job} {runs[i].partition}: {messages.get(i, '?')}" for i in failed_ids],
        votes=dict(Counter(v.outcome.split(":")[0] for v in votes)),
        refused=[f"{v.voter} on {v.approval_id[:12]}: {v.outcome}" for v in votes if v.outcome != "counted"],
        audit=audit(stores, partitions),
    )


def settle(stores: Stores, before: set[str], also: Callable[[dict[str, RunRecord]], bool], timeout: float) -> bool:
    try:
        wait_for(lambda: _settled(stores, before, also), "the scenario's runs to settle", timeout=timeout, every=3)
    except AssertionError:
        return False
    return True


def same_partition(
    server: Webserver, stores: Stores, day: str, launches: int, jobs: Sequence[str], timeout: float
) -> ScenarioResult:
    """Each of ``jobs`` launched ``launches`` times at once for ``day``, one job after the other.

    Market data first (so the agents have inputs): its runs end together, the sensor launches
    the agents once per market-data run in one tick, and the agents' own launches race those.
    """
    before, started = set(recorded_runs(stores)), time.monotonic()
    settled = True
    for job in jobs:
        launch_at_once(server, job, day, launches)
        settled = settled and settle(stores, before, lambda _: True, timeout)
    settled = settled and settle(stores, before, sensor_caught_up(before), timeout)
    launched = " then ".join(f"{launches}x {job}" for job in jobs) + f" at once, {day}"
    return _result(stores, "same_partition", [day], launched, before, started, settled)


def backfill_over_sensor(server: Webserver, stores: Stores, days: Sequence[str], timeout: float) -> ScenarioResult:
    """An asset backfill over ``days`` while market-data runs for them end and the sensor launches the agents."""
    before, started = set(recorded_runs(stores)), time.monotonic()
    backfill = launch_asset_backfill(server, days)
    for day in days:
        server.client.submit_job_execution(MARKET_DATA_JOB, tags={"dagster/partition": day})

    def done(runs: dict[str, RunRecord]) -> bool:
        return backfill_status(server, backfill) in BACKFILL_DONE and sensor_caught_up(before)(runs)

    settled = settle(stores, before, done, timeout)
    launched = f"asset backfill + {len(days)}x {MARKET_DATA_JOB} (sensor: agents per day), {days[0]}..{days[-1]}"
    return _result(stores, "backfill_over_sensor", days, launched, before, started, settled)


def approvals_mid_run(
    server: Webserver, stores: Stores, days: Sequence[str], tokens: dict[str, str], timeout: float
) -> ScenarioResult:
    """Relaunch the agents for ``days`` and decide every pending approval of theirs while they run."""
    pending = pending_approvals(server, days)
    before, started = set(recorded_runs(stores)), time.monotonic()
    for day in days:
        server.client.submit_job_execution(DAILY_JOB, tags={"dagster/partition": day})
    wait_for(
        lambda: any(r.start for i, r in recorded_runs(stores).items() if i not in before),
        "a relaunched agents run to start",
        timeout=timeout,
    )
    votes = decide_all(server, pending, tokens)
    granted_days = {v.partition for v in votes if v.outcome == "counted"}

    def executed(runs: dict[str, RunRecord]) -> bool:
        """The approvals sensor launched an executor for every partition with a granted approval."""
        triggered = {
            r.partition for i, r in runs.items() if i not in before and r.tags.get("foureyes/trigger") == "approval"
        }
        return granted_days <= triggered

    settled = settle(stores, before, executed, timeout)
    during = sum(1 for v in votes if _during_a_run(v, before, stores))
    launched = f"{len(days)}x {DAILY_JOB}; {len(votes)} votes on {len(pending)} approvals ({during} mid-run)"
    return _result(stores, "approvals_mid_run", days, launched, before, started, settled, votes)


def _during_a_run(vote: Vote, before: set[str], stores: Stores) -> bool:
    return any(
        r.partition == vote.partition and r.start and r.start <= vote.at <= (r.end or time.time())
        for i, r in recorded_runs(stores).items()
        if i not in before and r.job == DAILY_JOB
    )


# -- the command -----------------------------------------------------------------------------


def run_all(server: Webserver, stores: Stores, partitions: int, launches: int, timeout: float) -> list[ScenarioResult]:
    days = business_days_ending(LAST_BACKFILL_DAY, partitions)
    tokens = add_approvers(server)
    results = [same_partition(server, stores, SAME_PARTITION_DAY, launches, (MARKET_DATA_JOB, DAILY_JOB), timeout)]
    results.append(backfill_over_sensor(server, stores, days, timeout))
    results.append(approvals_mid_run(server, stores, days, tokens, timeout))
    return results


def write_results(results: Sequence[ScenarioResult], sizes: str, load: tuple[str, str]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    scenarios = [asdict(r) | {"holds": r.holds} for r in results]
    (RESULTS / "concurrency.json").write_text(
        json.dumps({"sizes": sizes, "load": {"before": load[0], "after": load[1]}, "scenarios": scenarios}, indent=2)
        + "\n"
    )
    lines = [
        "# Concurrency on the production layout",
        "",
        f"`{sizes}`: PostgreSQL Dagster instance (deploy/dagster-postgres.yaml: queue of 4, run monitoring), "
        f"`dagster dev` daemon, Dagster's multiprocess executor (a process per step); foureyes' stores on PostgreSQL; "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]} before, {load[1]} after "
        f"(a shared machine). Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z.",
        "",
        "| scenario | launched | runs (job: status) | failed runs | multiprocess runs | approved actions "
        "| delivered | cancelled (reason) | granted / delivered | books rows / receipts | resent, deduplicated "
        "| outbox | votes | violations | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a = r.audit
        runs = ", ".join(f"{k} {n}" for k, n in sorted(r.runs.items()))
        outbox = ", ".join(f"{k} {n}" for k, n in sorted(a.outbox.items())) or "-"
        votes = ", ".join(f"{k} {n}" for k, n in sorted(r.votes.items())) or "-"
        lines.append(
            f"| {r.scenario} | {r.launched} | {runs} | {len(r.failed)} | {r.multiprocess_runs} | {a.approved_actions} "
            f"| {a.delivered} | {sum(a.cancelled.values())} | {a.granted} / {a.granted_delivered} "
            f"| {a.books_rows} / {a.receipts} | {a.resent_to_target} | {outbox} | {votes} "
            f"| {len(a.violations) + (not r.settled)} | {r.seconds} |"
        )
    for r in results:
        refused = [why for why in r.refused if STALE not in why]
        problems = [*r.failed, *r.audit.violations, *refused, *([] if r.settled else ["did not settle in time"])]
        if problems:
            lines += ["", f"## {r.scenario}: findings", "", *[f"- {p}" for p in problems[:40]]]
    (RESULTS / "concurrency.md").write_text("\n".join(lines) + "\n")
    return RESULTS / "concurrency.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=20, help="business days of the backfill")
    parser.add_argument("--launches", type=int, default=4, help="launches of the same partition at once")
    parser.add_argument("--pg-url", default=None, help="a PostgreSQL server (default: .ci/postgres on 55433)")
    parser.add_argument("--timeout", type=float, default=SETTLE_TIMEOUT_S, help="seconds a scenario may take")
    args = parser.parse_args()
    server_url = args.pg_url or start_postgres()
    stores = Stores.fresh(server_url, "concurrency")
    before = _load()
    with tempfile.TemporaryDirectory() as home, production_layout(stores, Path(home)) as server:
        results = run_all(server, stores, args.partitions, args.launches, args.timeout)
    sizes = f"--partitions {args.partitions} --launches {args.launches}"
    print(write_results(results, sizes, (before, _load())).read_text())
    if not all(r.holds for r in results):
        raise SystemExit(1)


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
