"""The model ``loan_triage`` runs on: the configured endpoints, or the stand-in when there are none.

With ``FOUREYES_MODELS`` set, every agent runs on those endpoints and nothing here is used.
Without it, the demo and the ``foureyes standin-model`` command serve the stand-in on loopback,
and the chain routes only ``loan_triage`` to it (``ModelBackend.agents``): the desk's other
agents keep their local policies rather than asking a server that has no answer for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import foureyes
from foureyes.examples.mortgage_pipeline.loan_triage import LOAN_TRIAGE
from foureyes.examples.mortgage_pipeline.standin_policy import loan_triage_policy
from foureyes.standin_model import STANDIN, StandinModelServer

MODELS = "foureyes_models"  # the resource key of the model chain that foureyes.definitions binds


def standin_chain(control_url: str, url: str, timeout_s: float = 10.0) -> foureyes.ModelChainResource:
    """A chain whose first link is the stand-in at ``url``, for ``loan_triage`` only."""
    standin = foureyes.ModelBackend(
        name="standin", kind="openai", url=url, model=STANDIN, agents=[LOAN_TRIAGE.name], retries=0, timeout_s=timeout_s
    )
    local = foureyes.ModelBackend(name="local_policy", kind="local_policy")
    return foureyes.ModelChainResource(control_url=control_url, backends=[standin, local])


@contextlib.contextmanager
def demo_models(settings: foureyes.FoureyesSettings, faults: tuple[str, ...] = ()) -> Iterator[dict[str, object]]:
    """Resource overrides for the demo: none with configured endpoints, else the stand-in, running."""
    if settings.models:
        yield {}
        return
    with StandinModelServer(loan_triage_policy, faults=faults) as server:
        yield {MODELS: standin_chain(settings.control_url, server.url)}
