"""What putting a Pydantic AI agent under foureyes costs: ``loan_triage`` on the stand-in, per tape.

For the loan tape of each of ``--days`` business days it times, median of ``--runs``:

* ``baseline``: the agent's deterministic triage alone (no model; the floor);
* ``adapter``: ``foureyes.pydantic_ai_propose`` — the real Pydantic AI agent on the foureyes
  model chain, over real HTTP to the stand-in model on loopback: three model turns, the read
  tools run and logged, every act call deferred to a proposal, the breakers read and written.

The stand-in answers in well under a millisecond, so the difference is foureyes' and Pydantic
AI's own machinery; a real model adds its latency on top. Results:
``benchmarks/results/agents.md`` (and ``.json``).

    python benchmarks/agents.py [--runs 5] [--days 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version

import pandas as pd
from bench_results import RESULTS

from foureyes.examples.finance_desk.calendar import business_days_ending
from foureyes.examples.mortgage_pipeline import servicing
from foureyes.examples.mortgage_pipeline.demo_model import standin_chain
from foureyes.examples.mortgage_pipeline.loan_triage import baseline_triage, propose_triage
from foureyes.examples.mortgage_pipeline.standin_policy import loan_triage_policy
from foureyes.propose.context import ProposalContext
from foureyes.standin_model import StandinModelServer


def _context(day: str, models: object | None) -> ProposalContext:
    file = servicing.servicer_file(day)
    inputs = {"servicer_file": file, "loan_tape": servicing.loan_tape(file, day)}
    return ProposalContext("loan_triage", day, inputs, logging.getLogger("bench"), models=models)


def _median_ms(propose: Callable[[ProposalContext], pd.DataFrame], make: Callable[[], ProposalContext], runs: int):
    times, rows = [], 0
    for _ in range(runs):
        ctx = make()
        started = time.perf_counter()
        rows = len(propose(ctx))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


def measure(days: list[str], runs: int) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as home, StandinModelServer(loan_triage_policy) as model:
        chain = standin_chain(f"sqlite:///{home}/control.db", model.url)
        for day in days:
            base_ms, base_rows = _median_ms(baseline_triage, lambda d=day: _context(d, None), runs)
            agent_ms, agent_rows = _median_ms(propose_triage, lambda d=day: _context(d, chain), runs)
            results.append(
                {
                    "partition": day,
                    "exceptions": len(servicing.exceptions(_context(day, None).inputs["loan_tape"])),
                    "baseline_ms": round(base_ms, 2),
                    "adapter_ms": round(agent_ms, 2),
                    "ratio": round(agent_ms / base_ms, 1),
                    "proposals": agent_rows,
                    "baseline_proposals": base_rows,
                }
            )
            print(f"{day}: baseline {base_ms:.1f} ms, adapter {agent_ms:.1f} ms", flush=True)
    return results


def write_results(rows: list[dict], runs: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Pydantic AI adapter: loan_triage per tape, against its own baseline",
        "",
        f"Median of {runs} runs; Python {platform.python_version()}, pydantic-ai-slim "
        f"{version('pydantic-ai-slim')}, openai {version('openai')}; the stand-in model on loopback.",
        "",
        "| partition | exceptions | baseline (ms) | adapter (ms) | adapter / baseline | proposals |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['partition']} | {r['exceptions']} | {r['baseline_ms']} | {r['adapter_ms']} | "
            f"{r['ratio']}x | {r['proposals']} |"
            for r in rows
        ),
        "",
        "The adapter's time is three model turns over HTTP, the read tools, the act calls deferred",
        "and the circuit breakers; a real model's latency comes on top of it.",
    ]
    (RESULTS / "agents.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "agents.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--days", type=int, default=5)
    args = parser.parse_args()
    rows = measure(business_days_ending("2026-11-20", args.days), args.runs)
    write_results(rows, args.runs)
    print((RESULTS / "agents.md").read_text())


if __name__ == "__main__":
    main()
