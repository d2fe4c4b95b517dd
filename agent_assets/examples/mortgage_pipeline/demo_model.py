"""The model ``loan_triage`` runs on: the configured endpoints, or the stand-in when there are none.

With ``FOUREYES_MODELS`` set, every agent runs on those endpoints and nothing here is used.
Without it, the shipped code location (the demo, ``make ui``) runs ``loan_triage`` on the
stand-in: ``StandinModelChain`` serves it on loopback for the length of each step that asks
the chain, and routes only ``loan_triage`` to it (``ModelBackend.agents``), so the desk's other
agents keep their local policies rather than asking a server that has no answer for them.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

import foureyes
from foureyes.examples.mortgage_pipeline.loan_triage import LOAN_TRIAGE
from foureyes.examples.mortgage_pipeline.standin_policy import loan_triage_policy
from foureyes.standin_model import STANDIN, StandinModelServer

MODELS = "foureyes_models"  # the resource key of the model chain that foureyes.definitions binds


def standin_backend(url: str, timeout_s: float = 10.0) -> foureyes.ModelBackend:
    """The stand-in at ``url`` as a link of the chain, for ``loan_triage`` only."""
    return foureyes.ModelBackend(
        name="standin", kind="openai", url=url, model=STANDIN, agents=[LOAN_TRIAGE.name], retries=0, timeout_s=timeout_s
    )


def standin_chain(control_url: str, url: str, timeout_s: float = 10.0) -> foureyes.ModelChainResource:
    """A chain whose first link is the stand-in already serving at ``url``, then the local policies."""
    local = foureyes.ModelBackend(name="local_policy", kind="local_policy")
    return foureyes.ModelChainResource(control_url=control_url, backends=[standin_backend(url, timeout_s), local])


class StandinModelChain(foureyes.ModelChainResource):
    """The model chain with the stand-in first, served on loopback while a step uses the chain.

    Labelled for what it is: the decision log names the backend ``standin`` and its model
    ``foureyes-standin``. ``faults`` switches on its misbehaviours (``foureyes.standin_model``).
    """

    faults: list[str] = Field(default_factory=list, description="Misbehaviours of the stand-in to switch on.")
    _server: StandinModelServer | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._server = StandinModelServer(loan_triage_policy, faults=self.faults).start()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._server is not None:
            self._server.stop()

    def chain(self) -> list[foureyes.ModelBackend]:
        links = super().chain()
        return links if self._server is None else [standin_backend(self._server.url), *links]
