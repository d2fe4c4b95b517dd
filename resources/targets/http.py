"""An executor target behind HTTP: an order, collateral or ticketing system (a "tool server").

Every action is POSTed as JSON with its idempotency key, in the body and in the
``Idempotency-Key`` header. Only an explicit confirmation counts as executed: 200/201 with a
JSON body whose ``status`` is ``accepted`` (or ``duplicate``: the far side already has it),
or a 409 Conflict. A 4xx other than 409 and 429 is a refusal that needs a human.

Anything else leaves the action unconfirmed, and whether it may be sent again depends on
whether it may have arrived: a refused connection, a 429 or a 503 (the server declined
before acting) certainly did not, so the action is queued for a retry; a timeout, a dropped
connection, another 5xx or a garbled answer may have, so unless the far side honours the
key (``honours_idempotency_key``) the action is put in doubt, for a human.

Credentials never travel in the URL: a ``user:password@`` in ``url`` is sent as HTTP basic
auth, ``token`` as a bearer token, and every URL and error text shown or stored is redacted.
"""

from __future__ import annotations

from typing import ClassVar

import requests
from pydantic import Field

from foureyes.resources.errors import TargetRefusedError, TargetUnavailableError
from foureyes.resources.lineage.emitter import LineageDataset
from foureyes.resources.redaction import (
    redact_url,
    register_secret,
    register_url,
    scrub,
    url_credentials,
    without_userinfo,
)
from foureyes.resources.targets.base import Action, ActionTarget, TargetResult

DECLINED_BEFORE_ACTING = (429, 503)


class HttpToolTarget(ActionTarget):
    """POSTs approved actions to ``{url}/actions``.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> oms = foureyes.HttpToolTarget(
        ...     url="https://oms.internal/",
        ...     token=dg.EnvVar("OMS_TOKEN"),
        ...     actions=["buy", "sell"],
        ...     honours_idempotency_key=True,
        ... )
        >>> oms.shown_url, oms.actions, oms.deduplicates
        ('https://oms.internal', ['buy', 'sell'], True)
        >>> sorted(dg.Definitions(resources={"order_system": oms}).resources)
        ['order_system']
    """

    kind: ClassVar[str] = "http_tool"
    url: str = Field(description="Base URL of the tool server; actions go to POST {url}/actions.")
    token: str | None = Field(default=None, description="Bearer token; pass it with dg.EnvVar.")
    timeout_s: float = Field(default=5.0, description="Seconds to wait for a confirmation.")
    honours_idempotency_key: bool = Field(
        default=False,
        description="The far side acts once per Idempotency-Key: unconfirmed deliveries are then retried "
        "automatically; otherwise they wait, in doubt, for a human.",
    )

    def model_post_init(self, context: object) -> None:
        super().model_post_init(context)
        register_url(self.url)
        register_secret(self.token)

    @property
    def deduplicates(self) -> bool:
        return self.honours_idempotency_key

    @property
    def shown_url(self) -> str:
        return redact_url(self.url).rstrip("/")

    def execute(self, action: Action) -> TargetResult:
        headers = {"Idempotency-Key": action.idempotency_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        user, password = url_credentials(self.url)
        body = {
            "idempotency_key": action.idempotency_key,
            "agent": action.agent,
            "partition": action.partition,
            "proposal_id": action.proposal_id,
            "action": action.action,
            "payload": action.payload,
            "rationale": action.rationale,
        }
        where = self.shown_url
        try:
            response = requests.post(
                f"{without_userinfo(self.url).rstrip('/')}/actions",
                json=body,
                headers=headers,
                auth=(user or "", password or "") if user or password else None,
                timeout=self.timeout_s,
            )
        except requests.ConnectTimeout:
            raise TargetUnavailableError(
                f"{where} did not accept a connection within {self.timeout_s}s", sent=False
            ) from None
        except requests.Timeout:
            raise TargetUnavailableError(f"{where} did not confirm within {self.timeout_s}s", sent=True) from None
        except requests.ConnectionError as exc:
            sent = not _never_connected(exc)
            why = "is unreachable" if not sent else "dropped the connection before confirming"
            raise TargetUnavailableError(f"{where} {why} ({type(exc).__name__})", sent=sent) from None
        text = self._scrubbed(response.text[:200])
        if response.status_code == 409:
            return TargetResult("duplicate", {"http_status": 409})
        if response.status_code in DECLINED_BEFORE_ACTING:
            raise TargetUnavailableError(f"{where} declined for now ({response.status_code}): {text}", sent=False)
        if response.status_code >= 500:
            raise TargetUnavailableError(f"{where} answered {response.status_code}: {text}", sent=True)
        if response.status_code >= 400:
            raise TargetRefusedError(f"{where} refused the action ({response.status_code}): {text}")
        try:
            confirmation = response.json()
            status = confirmation["status"]
        except (ValueError, KeyError, TypeError):
            raise TargetUnavailableError(f"{where} answered without a confirmation: {text!r}", sent=True) from None
        if status not in ("accepted", "duplicate"):
            shown = self._scrubbed(status)
            raise TargetUnavailableError(f"{where} did not accept the action: status {shown!r}", sent=True)
        return TargetResult(
            "executed" if status == "accepted" else "duplicate",
            {"http_status": response.status_code, "reference": self._scrubbed(confirmation.get("reference", ""))},
        )

    def dataset(self) -> LineageDataset:
        return LineageDataset(namespace=self.shown_url, name="actions")

    def _scrubbed(self, text: object) -> str:
        """A far side's words, without anything of our credentials (a hostile server may echo them)."""
        return scrub(text, [self.token, *url_credentials(self.url)])


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the request never left: the connection itself was refused or the name did not resolve."""
    text = repr(exc)
    return any(sign in text for sign in ("NewConnectionError", "NameResolutionError", "Connection refused"))
