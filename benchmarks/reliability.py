"""Proof under faults: real runs SIGKILLed at random points, and a tool server that flaps.

**Crash injection.** The payments desk of ``crash_desk.py`` (a user's project: a feed, one
agent, a schema and a rule, an executor paying through ``HttpToolTarget``) is materialised
one book at a time by the dagster CLI, in-process, so the CLI's process is the run. Each
round moves the feed to a new edition (every partition's new version differs from its old),
picks a fault, one of its points in ``crash_points`` and an occurrence at random, and runs
the book with that kill armed: the run SIGKILLs itself there, or the tool server kills it the
moment it has applied a payment. Then the outbox's clock is moved past its leases and
backoffs (instead of waiting ten minutes), the same command is run again, and it checks:

* each warehouse partition of the book was, at the kill, wholly its old or its new version
  (its rows hash to its catalog version, and that version is the one before or after);
* every payment approved by the latest supervision was applied by the hub exactly once: none
  lost after the resume, none applied twice (per business id, whatever key it was sent under);
* nothing is stuck (queued, delivering, in doubt or failed) after the resume;
* the decision log, the outbox, the receipts and the hub agree: each approved payment has an
  outbox entry, each delivered entry one receipt, each receipt an application, and back.

**Flapping.** ``--actions`` payments go through the same target to a hub that declines 30% of
requests before acting (503), applies and answers too late for the client (7%, a timeout),
or applies and drops the connection (7%, a lost response). The executor is re-run, each time
the outbox's backoffs are over, until nothing is queued; then exactly ``--actions`` must be
applied, none twice, none queued.

    python benchmarks/reliability.py [--kills 100] [--actions 1000] [--engines sqlite,postgresql] [--pg-url URL]
                                     [--faults "mid supervision record,..."] [--report-from A.json B.json]

Writes ``results/reliability.md`` (and ``.json``); each goal is 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from bench_results import RESULTS
from crash_points import FAULTS, POINTS
from local_postgres import fresh_database, start_postgres
from tool_server import Flapping, PaymentsHub

from foureyes.checks.supervisor import HOLD
from foureyes.resources.control_plane.decisions import APPROVED
from foureyes.resources.control_plane.outbox import CANCELLED, DELIVERED, DELIVERING, QUEUED
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import outbox
from foureyes.resources.engine import dispose_all
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource
from foureyes.resources.warehouse.versions import dataset_version

HERE = Path(__file__).resolve().parent
DESK = HERE / "crash_desk.py"
AGENT = "payer"
TABLES = ("payments_feed", "payer_proposals", "payer_actions")
SERVER_KILL = "tool_server_applied"  # the one point the hub arms, not the run
KILLED = -signal.SIGKILL
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass
class Findings:
    """One fault on one engine: what was done, and every broken promise counted (each goal: 0)."""

    fault: str
    engine: str
    runs: int = 0
    kills: int = 0
    half_written: int = 0
    duplicate: int = 0
    lost: int = 0
    stuck: int = 0
    disagreements: int = 0
    failed_resumes: int = 0
    points: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, kind: str, count: int, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        if count and len(self.examples) < 5:
            self.examples.append(f"{kind}: {what}")

    @property
    def broken(self) -> int:
        return self.half_written + self.duplicate + self.lost + self.stuck + self.disagreements + self.failed_resumes


@dataclass(frozen=True)
class Stores:
    """One engine's foureyes stores and the Dagster home the runs record into."""

    engine: str
    home: Path
    settings: FoureyesSettings

    @classmethod
    def create(cls, engine: str, workdir: Path, pg_server: str | None) -> Stores:
        home = workdir / engine
        (home / "dagster").mkdir(parents=True)
        (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        environ = {"FOUREYES_HOME": str(home)}
        if engine == "postgresql":
            url = fresh_database(pg_server, f"reliability_{workdir.name}_{os.getpid()}")
            environ |= {"FOUREYES_CONTROL_URL": url, "FOUREYES_WAREHOUSE_URL": url}
        return cls(engine, home, FoureyesSettings.from_env(environ))

    @property
    def environ(self) -> dict[str, str]:
        return {
            "FOUREYES_HOME": str(self.home),
            "FOUREYES_CONTROL_URL": self.settings.control_url,
            "FOUREYES_WAREHOUSE_URL": self.settings.warehouse_url,
            "DAGSTER_HOME": str(self.home / "dagster"),
        }

    @property
    def control(self) -> ControlPlaneResource:
        return ControlPlaneResource(url=self.settings.control_url)

    @property
    def warehouse(self) -> SqlWarehouseResource:
        return SqlWarehouseResource(url=self.settings.warehouse_url)

    def time_passes(self) -> None:
        """Every lease and backoff of the outbox is over: what ten minutes of waiting would do."""
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        with self.control.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.status.in_([QUEUED, DELIVERING]))
                .values(next_attempt_at=past, lease_until=sa.case((outbox.c.status == DELIVERING, past), else_=None))
            )


# ---------------------------------------------------------------------------- crash injection


class Desk:
    """Runs a book of the payments desk through the dagster CLI, as an operator would."""

    def __init__(self, stores: Stores, hub: PaymentsHub, workdir: Path):
        self.stores = stores
        self.hub = hub
        self.tally_file = workdir / f"tally-{stores.engine}.json"
        self.reached: dict[str, Counter] = {}  # book -> how often each point was reached by its last clean run

    def run(self, book: str, generation: int, point: str | None = None, at: int = 1) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.stores.environ, "CRASH_GENERATION": str(generation), "CRASH_TOOL_URL": self.hub.url}
        if point is None:
            env["FOUREYES_CRASH_TALLY"] = str(self.tally_file)
        elif point != SERVER_KILL:
            env |= {"FOUREYES_CRASH_POINT": point, "FOUREYES_CRASH_AT": str(at)}
        command = [
            str(Path(sys.executable).with_name("dagster")),
            *("asset", "materialize", "-f", str(DESK), "--select", "*", "--partition", book),
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if point == SERVER_KILL:
            self._kill_on_application(process, at)
        out, _ = process.communicate(timeout=600)
        self.hub.on_applied = None
        if point is None and process.returncode == 0:
            self.reached[book] = Counter(json.loads(self.tally_file.read_text()))
        return subprocess.CompletedProcess(command, process.returncode, out, "")

    def occurrences(self, book: str, point: str) -> int:
        counted = "before_receipt" if point == SERVER_KILL else point  # one application per receipt
        return max(1, self.reached.get(book, Counter()).get(counted, 1))

    def _kill_on_application(self, process: subprocess.Popen, at: int) -> None:
        applied = 0

        def kill(_key: str) -> None:
            nonlocal applied
            applied += 1
            if applied == at:
                process.send_signal(signal.SIGKILL)

        self.hub.on_applied = kill


def partition_states(stores: Stores, book: str) -> dict[str, tuple[str | None, bool]]:
    """Per table: the book's catalog version, and whether its rows are wholly that version."""
    warehouse = stores.warehouse
    states = {}
    for table in TABLES:
        record = warehouse.partition_record(table, book)
        if record is None:
            states[table] = (None, True)
            continue
        stored = warehouse.read_partition(table, book)
        whole = len(stored.frame) == record.row_count and dataset_version(stored.frame) == record.version
        states[table] = (record.version, whole)
    return states


def audit(stores: Stores, hub: PaymentsHub, book: str, generation: int, findings: Findings) -> None:
    """After the resume: every approved payment applied once, nothing stuck, every record agreeing."""
    control = stores.control
    version = stores.warehouse.partition_record("payer_proposals", book).version
    supervision = control.decision_log.supervision(AGENT, book, version)
    if supervision is None:
        findings.note("lost", 1, f"{book} g{generation}: the stored proposals were never supervised")
        return
    approved = control.decision_log.of_supervision(
        supervision.supervision_id, verdicts=(APPROVED,), exclude_action=HOLD
    )
    keys = {idempotency_key(AGENT, book, d.proposal_id, d.action) for d in approved}
    entries = {e.idempotency_key: e for e in control.outbox.find(agent=AGENT, partition=book)}
    receipts = {r.idempotency_key for r in control.receipts.for_partition(AGENT, book)}
    applied = {key for key, payment in hub.applied.items() if payment.startswith(f"{book}-")}
    current = f"{book}-g{generation}-"
    lost = keys - applied
    findings.note("lost", len(lost), f"{book} g{generation}: {len(lost)} approved payment(s) never applied")
    twice = {p: n for p, n in hub.applications.items() if p.startswith(current) and n > 1}
    findings.note("duplicate", sum(n - 1 for n in twice.values()), f"{book}: applied more than once: {sorted(twice)}")
    stuck = [e for e in entries.values() if e.status not in (DELIVERED, CANCELLED)]
    findings.note("stuck", len(stuck), f"{book}: {[(e.idempotency_key[:8], e.status) for e in stuck]}")
    delivered = {k for k, e in entries.items() if e.status == DELIVERED}
    mismatches = {
        "approved without an outbox entry": keys - set(entries),
        "delivered without a receipt": delivered - receipts,
        "a receipt for an entry not delivered": receipts - delivered,
        "applied without a receipt": applied - receipts,
        "a receipt for nothing applied": receipts - applied,
    }
    for what, wrong in mismatches.items():
        findings.note("disagreements", len(wrong), f"{book} g{generation}: {what}: {len(wrong)}")


def crash_rounds(
    stores: Stores, kills: int, workdir: Path, rng: random.Random, books: list[str], faults: list[str]
) -> list[Findings]:
    """Kill ``kills`` runs on this engine (at least), shared by the four faults; resume and check after each."""
    hub = PaymentsHub().start()
    desk = Desk(stores, hub, workdir)
    restart = InProcessDesk(stores, hub.url, timeout_s=2.0)
    findings = {fault: Findings(fault, stores.engine) for fault in faults}
    generation = 1
    for book in books:  # every book written once, cleanly: the "old" versions of the first round
        done = desk.run(book, generation)
        if done.returncode != 0:
            raise SystemExit(f"the clean run of {book} failed:\n{done.stdout[-3000:]}")
    unseen = [p for p in POINTS if not any(desk.reached[book][p] for book in books)]
    if unseen:  # the harness no longer recognises foureyes' SQL there: it would report kills it never made
        raise SystemExit(f"{stores.engine}: clean runs never reached {', '.join(unseen)}; see crash_points.py")
    quota = -(-kills // len(faults))  # each fault gets its share of the kills
    attempts = 0
    while attempts < kills * 3 and (short := [f for f in faults if findings[f].kills < quota]):
        fault = short[attempts % len(short)]
        attempts += 1
        point = rng.choice(FAULTS[fault])
        book = rng.choice(books)
        generation += 1
        at = rng.randint(1, desk.occurrences(book, point))
        found = findings[fault]
        before = partition_states(stores, book)
        killed = desk.run(book, generation, point, at)
        found.runs += 1
        if killed.returncode == KILLED:
            found.kills += 1
            found.points[point] += 1
        elif killed.returncode != 0:
            found.note("failed_resumes", 1, f"{book} {point}@{at} failed without a kill: {killed.stdout[-300:]}")
        at_kill = partition_states(stores, book)
        stores.time_passes()
        found.runs += 1
        if not restart.run(book, generation):
            found.note("failed_resumes", 1, f"{book} after {point}@{at}: the restarted run failed")
            continue
        after = partition_states(stores, book)
        for table, (version, whole) in at_kill.items():
            # a run not killed wrote its own new version of each table (its actions differ from the restart's)
            if not whole or (killed.returncode == KILLED and version not in (before[table][0], after[table][0])):
                found.note("half_written", 1, f"{book} {table} after {point}@{at}: {version} whole={whole}")
        audit(stores, hub, book, generation, found)
        total = sum(f.kills for f in findings.values())
        print(f"  {stores.engine}: {total}/{kills} kills ({fault}: {point}@{at}, {book})", flush=True)
    hub.stop()
    restart.instance.dispose()
    return list(findings.values())


# ---------------------------------------------------------------------------- flapping


class InProcessDesk:
    """The same desk run in this process (Dagster's ``execute_in_process``): for the many executor re-runs."""

    def __init__(self, stores: Stores, hub_url: str, timeout_s: float):
        import crash_desk

        self.desk = crash_desk
        self.stores = stores
        self.hub_url = hub_url
        self.timeout_s = timeout_s
        self.instance = dg.DagsterInstance.from_config(str(stores.home / "dagster"))

    def run(
        self,
        book: str,
        generation: int = 1,
        payments: int | None = None,
        max_amount: float | None = None,
        *,
        only_actions: bool = False,
    ) -> bool:
        edition = self.desk.FeedEdition(
            generation=generation,
            payments=payments or self.desk.PAYMENTS_PER_BOOK,
            max_amount=max_amount or self.desk.FeedEdition.model_fields["max_amount"].default,
        )
        defs = self.desk.build_definitions(edition, self.hub_url, self.timeout_s, settings=self.stores.settings)
        return (
            defs.resolve_implicit_global_asset_job_def()
            .execute_in_process(
                partition_key=book,
                instance=self.instance,
                asset_selection=[dg.AssetKey("payer_actions")] if only_actions else None,
                raise_on_error=False,
                run_config=QUIET,
            )
            .success
        )


def flapping_run(stores: Stores, actions: int, books: int, max_rounds: int = 60) -> Findings:
    """``actions`` payments through a hub that flaps; re-run the executor until nothing is queued."""
    found = Findings("flapping tool server", stores.engine)
    flapping = Flapping()
    hub = PaymentsHub(flapping).start()
    desk = InProcessDesk(stores, hub.url, timeout_s=flapping.late_by_s / 2)
    names = desk.desk.BOOKS[:books]
    per_book, extra = divmod(actions, len(names))
    for i, book in enumerate(names):
        if not desk.run(book, payments=per_book + (i < extra), max_amount=desk.desk.LIMIT):
            found.note("failed_resumes", 1, f"{book}: the first run failed")
        found.runs += 1
    control = stores.control
    for _ in range(max_rounds):
        waiting = {e.partition for e in control.outbox.find(agent=AGENT) if e.status in (QUEUED, DELIVERING)}
        if not waiting:
            break
        stores.time_passes()
        for book in sorted(waiting):
            found.runs += 1
            if not desk.run(book, only_actions=True):
                found.note("failed_resumes", 1, f"{book}: an executor run failed")
    expected = {e.idempotency_key for e in control.outbox.find(agent=AGENT)}
    found.note("lost", len(expected - set(hub.applied)), "queued payments never applied")
    found.note("duplicate", sum(n - 1 for n in hub.applications.values() if n > 1), "payments applied twice")
    left = [e for e in control.outbox.find(agent=AGENT) if e.status != DELIVERED]
    found.note("stuck", len(left), f"not delivered: {Counter(e.status for e in left)}")
    unexpected = set(hub.applied) - expected
    found.note("disagreements", len(unexpected), "applied without an outbox entry")
    if len(expected) != actions:
        found.note("lost", abs(actions - len(expected)), f"{len(expected)} payments approved, not {actions}")
    found.points.update({f"requests {b}": n for b, n in hub.behaviours.items()})
    found.points["applied"] = len(hub.applied)
    found.points["deliveries"] = sum(hub.deliveries.values())
    hub.stop()
    desk.instance.dispose()
    return found


# ---------------------------------------------------------------------------- report


def write_results(findings: list[Findings], args: argparse.Namespace, seconds: float) -> Path:
    header = (
        "| fault | engine | runs | kills | half-written partitions | duplicate | lost | stuck | records disagreeing |"
    )
    kills = Counter()
    for f in findings:
        kills[f.engine] += f.kills
    flapped = {f.engine: f.points.get("applied", 0) for f in findings if f.fault not in FAULTS}
    lines = [
        "# Reliability: SIGKILLed runs and a flapping tool server",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, seed {args.seed}; "
        f"kills: {', '.join(f'{e} {n}' for e, n in kills.items())}; actions applied through the flapping server: "
        f"{', '.join(f'{e} {n}' for e, n in flapped.items())}"
        + (f"; {seconds / 60:.1f} min in all. " if seconds else ". ")
        + "Every count of broken promises has the goal 0.",
        "",
        header,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in findings:
        lines.append(
            f"| {f.fault} | {f.engine} | {f.runs} | {f.kills if f.fault != 'flapping tool server' else '-'} "
            f"| {f.half_written} | {f.duplicate} | {f.lost} | {f.stuck} | {f.disagreements + f.failed_resumes} |"
        )
    lines += ["", "Where the kills landed, and what the flapping server did:", ""]
    lines += [
        f"- {f.fault}, {f.engine}: " + ", ".join(f"{k} {n}" for k, n in sorted(f.points.items())) for f in findings
    ]
    examples = [f"- {f.fault}, {f.engine}: {e}" for f in findings for e in f.examples]
    lines += ["", "Broken promises found:", "", *(examples or ["- none"])]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")
    rows = [{**asdict(f), "points": dict(f.points)} for f in findings]
    (RESULTS / "reliability.json").write_text(json.dumps(rows, indent=2) + "\n")
    return RESULTS / "reliability.md"


def findings_from(path: Path) -> list[Findings]:
    """The findings another run wrote (``--report-from``: engines run side by side, one table)."""
    rows = json.loads(path.read_text())
    return [Findings(**{**row, "points": Counter(row["points"])}) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs per engine, spread over the four faults")
    parser.add_argument("--actions", type=int, default=1000, help="actions through the flapping tool server (0: none)")
    parser.add_argument("--books", type=int, default=4, help="partitions the kills are spread over")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pg-url", help="a PostgreSQL server to work in (default: the local durable one)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--faults",
        type=lambda text: text.split(","),
        default=list(FAULTS),
        help=f"which faults, comma-separated (default all: {', '.join(FAULTS)})",
    )
    parser.add_argument("--report-from", nargs="+", type=Path, help="only write the table of these runs' JSON")
    args = parser.parse_args()
    if args.report_from:
        findings = [f for path in args.report_from for f in findings_from(path)]
        print(write_results(findings, args, seconds=0.0).read_text())
        return
    if unknown := set(args.faults) - set(FAULTS):
        parser.error(f"no fault {', '.join(sorted(unknown))}; the faults are: {', '.join(FAULTS)}")
    engines = args.engines.split(",")
    pg_server = args.pg_url or (start_postgres() if "postgresql" in engines else None)
    started = time.perf_counter()
    findings: list[Findings] = []
    with tempfile.TemporaryDirectory(prefix="foureyes-reliability-") as tmp:
        for engine in engines:
            rng = random.Random(args.seed)
            stores = Stores.create(engine, Path(tmp) / "crash", pg_server)
            print(f"{engine}: {args.kills} kills over {args.books} books ...", flush=True)
            findings += crash_rounds(stores, args.kills, Path(tmp), rng, _books(args.books), args.faults)
            if args.actions:
                stores = Stores.create(engine, Path(tmp) / "flapping", pg_server)
                print(f"{engine}: {args.actions} actions through the flapping tool server ...", flush=True)
                findings.append(flapping_run(stores, args.actions, books=min(20, max(1, args.actions // 50))))
            dispose_all()
    path = write_results(findings, args, time.perf_counter() - started)
    print(path.read_text())
    broken = sum(f.broken for f in findings)
    if broken:
        raise SystemExit(f"{broken} broken promise(s): see {path}")


def _books(count: int) -> list[str]:
    import crash_desk

    return crash_desk.BOOKS[:count]


if __name__ == "__main__":
    main()
