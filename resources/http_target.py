"""An executor target behind HTTP: an order, collateral or ticketing system (a "tool server").

Every action is POSTed as JSON with its idempotency key, in the body and in the
``Idempotency-Key`` header, so the far side can deduplicate a retried delivery. Only an
explicit confirmation counts as executed: 200/201 with a JSON body whose ``status`` is
``accepted`` (or ``duplicate``: the far side already has it), or a 409 Conflict. A timeout,
a connection error, a 5xx or an answer that is not such JSON leaves the action queued in the
outbox for a later retry; any other 4xx is a refusal that needs a human.
"""

from __future__ import annotations

from typing import ClassVar

import requests
from pydantic import Field

from resources.action_targets import Action, ActionTarget, TargetResult
from resources.errors import TargetRefusedError, TargetUnavailableError
from resources.lineage import LineageDataset


class HttpToolTarget(ActionTarget):
    """POSTs approved actions to ``{url}/actions``.

    Examples:
        .. code-block:: python

            defs = dg.Definitions(
                assets=[...],
                resources={"order_system": HttpToolTarget(url="https://oms", token=dg.EnvVar("OMS_TOKEN"))},
            )
    """

    kind: ClassVar[str] = "http_tool"
    url: str = Field(description="Base URL of the tool server; actions go to POST {url}/actions.")
    token: str | None = Field(default=None, description="Bearer token; pass it with dg.EnvVar.")
    timeout_s: float = Field(default=5.0, description="Seconds to wait for a confirmation.")

    def execute(self, action: Action) -> TargetResult:
        headers = {"Idempotency-Key": action.idempotency_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        body = {
            "idempotency_key": action.idempotency_key,
            "agent": action.agent,
            "partition": action.partition,
            "proposal_id": action.proposal_id,
            "action": action.action,
            "payload": action.payload,
            "rationale": action.rationale,
        }
        try:
            response = requests.post(
                f"{self.url.rstrip('/')}/actions", json=body, headers=headers, timeout=self.timeout_s
            )
        except requests.Timeout:
            raise TargetUnavailableError(f"{self.url} did not confirm within {self.timeout_s}s") from None
        except requests.ConnectionError as exc:
            raise TargetUnavailableError(f"{self.url} is unreachable ({type(exc).__name__})") from None
        if response.status_code == 409:
            return TargetResult("duplicate", {"http_status": 409})
        if response.status_code >= 500:
            raise TargetUnavailableError(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise TargetRefusedError(f"{self.url} refused the action ({response.status_code}): {response.text[:200]}")
        try:
            confirmation = response.json()
            status = confirmation["status"]
        except (ValueError, KeyError, TypeError):
            raise TargetUnavailableError(
                f"{self.url} answered without a confirmation: {response.text[:200]!r}"
            ) from None
        if status not in ("accepted", "duplicate"):
            raise TargetUnavailableError(f"{self.url} did not accept the action: status {status!r}")
        return TargetResult(
            "executed" if status == "accepted" else "duplicate",
            {"http_status": response.status_code, "reference": str(confirmation.get("reference", ""))},
        )

    def dataset(self) -> LineageDataset:
        return LineageDataset(namespace=self.url.rstrip("/"), name="actions")
