"""The model chain: ask an ordered list of model backends until one gives a valid answer.

Each backend — an OpenAI-compatible HTTP endpoint, or the agent's own deterministic local
policy — gets a timeout and a few retries with backoff, behind a circuit breaker kept in the
control plane. An answer that is not JSON, or not valid against the question's JSON schema,
or that the agent's own acceptance test refuses, is a failure of that backend, and the chain
moves on. When every backend failed the chain raises ``ModelChainExhaustedError`` and the agent
falls back to its deterministic baseline. Every attempt — which backend, what happened,
how long it took — is returned, for the decision log. Secrets never leave the request: an
endpoint's URL is recorded without its credentials (a ``user:key@`` in it is sent as the
bearer key), and what an endpoint answers is scrubbed of our credentials before it is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import jsonschema
import requests
from pydantic import Field

from foureyes.resources.control_plane.resource import control_engine
from foureyes.resources.errors import FoureyesError
from foureyes.resources.fallback.circuit_breakers import CircuitBreakers
from foureyes.resources.redaction import (
    redact_url,
    register_secret,
    register_url,
    scrub,
    url_credentials,
    without_userinfo,
)
from foureyes.resources.settings import parse_models

OPENAI, LOCAL_POLICY = "openai", "local_policy"


class ModelChainExhaustedError(FoureyesError):
    """No backend of the chain produced a valid answer."""

    def __init__(self, attempts: list[dict]):
        self.attempts = attempts
        summary = "; ".join(f"{a['backend']}: {a['outcome']}" for a in attempts) or "no backend configured"
        super().__init__(f"every model backend failed ({summary})")


class BackendFailedError(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


@dataclass(frozen=True)
class ModelQuestion:
    """What an agent asks: a prompt, the JSON schema of a valid answer, and its local policy."""

    system: str
    prompt: str
    answer_schema: dict
    local_policy: Callable[[], dict]
    accept: Callable[[dict], None] = lambda answer: None

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(f"{self.system}\n{self.prompt}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelAnswer:
    answer: dict
    backend: str
    attempts: list[dict] = field(default_factory=list)
    prompt_hash: str = ""


class ModelBackend(dg.Config):
    """One link of the chain."""

    name: str = Field(description="Name used in the decision log and for its circuit breaker.")
    kind: Literal["openai", "local_policy"] = Field(description="openai: an OpenAI-compatible HTTP endpoint.")
    url: str | None = Field(default=None, description="Base URL, e.g. http://models:8000 (POST /v1/chat/completions).")
    model: str = Field(default="default", description="Model name sent to the endpoint.")
    api_key: str | None = Field(default=None, description="Bearer token; pass it with dg.EnvVar, never in code.")
    timeout_s: float = Field(default=10.0, description="Per-request timeout.")
    retries: int = Field(default=1, description="Extra attempts after a failure (timeouts, 5xx, bad answers).")
    backoff_s: float = Field(default=0.5, description="First backoff; doubled for each retry.")
    enabled: bool = Field(default=True, description="False skips this backend (recorded as disabled).")


class ModelChainResource(dg.ConfigurableResource):
    """An ordered chain of model backends with timeouts, retries and shared circuit breakers.

    ``endpoints`` lists OpenAI-compatible endpoints as ``name=url;name=url`` (the form of
    ``FOUREYES_MODELS``; pass it with ``dg.EnvVar``), tried before ``backends``.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> models = foureyes.ModelChainResource(
        ...     control_url="sqlite:///control.db",
        ...     endpoints="primary=http://models-a:8000",
        ...     backends=[
        ...         foureyes.ModelBackend(
        ...             name="secondary", kind="openai", url="http://models-b:8000", api_key=dg.EnvVar("MODEL_B_KEY")
        ...         ),
        ...         foureyes.ModelBackend(name="local", kind="local_policy"),
        ...     ],
        ... )
        >>> [(backend.name, backend.kind) for backend in models.chain()]
        [('primary', 'openai'), ('secondary', 'openai'), ('local', 'local_policy')]

        A chain of only the local policy answers without a network:

        >>> local = foureyes.ModelChainResource(
        ...     control_url="sqlite:///control.db", backends=[foureyes.ModelBackend(name="local", kind="local_policy")]
        ... )
        >>> question = foureyes.ModelQuestion(
        ...     system="You size hedges.",
        ...     prompt="Hedge P1?",
        ...     answer_schema={"type": "object", "required": ["hedge"]},
        ...     local_policy=lambda: {"hedge": 0.5},
        ... )
        >>> answer = local.ask(question)
        >>> answer.backend, answer.answer
        ('local', {'hedge': 0.5})
    """

    control_url: str = Field(description="Control-plane store holding the circuit breakers.")
    endpoints: str = Field(
        default="", description="OpenAI-compatible endpoints tried first, as name=url;name=url (FOUREYES_MODELS)."
    )
    backends: list[ModelBackend] = Field(
        default_factory=lambda: [ModelBackend(name="local_policy", kind=LOCAL_POLICY)],
        description="Backends in the order they are tried.",
    )
    breaker_threshold: int = Field(default=3, description="Consecutive failures that open a breaker.")
    breaker_cooldown_s: float = Field(default=300.0, description="How long an open breaker skips its backend.")

    def ask(self, question: ModelQuestion) -> ModelAnswer:
        breakers = CircuitBreakers(
            control_engine(self.control_url),
            self.breaker_threshold,
            dt.timedelta(seconds=self.breaker_cooldown_s),
        )
        attempts: list[dict] = []
        for backend in self.chain():
            if not backend.enabled:
                attempts.append(_attempt(backend, "disabled", "disabled in configuration", 0.0, 0))
                continue
            allowed, why = breakers.allows(backend.name)
            if not allowed:
                attempts.append(_attempt(backend, "circuit_open", why, 0.0, 0))
                continue
            answer, attempt = self._try(backend, question)
            attempts.append(attempt)
            if answer is not None:
                breakers.succeeded(backend.name)
                return ModelAnswer(answer, backend.name, attempts, question.prompt_hash)
            breakers.failed(backend.name, f"{attempt['outcome']}: {attempt['detail']}")
        raise ModelChainExhaustedError(attempts)

    def chain(self) -> list[ModelBackend]:
        """The backends in the order they are tried: the configured endpoints, then ``backends``."""
        return [*(_endpoint_backend(name, url) for name, url in parse_models(self.endpoints)), *self.backends]

    def _try(self, backend: ModelBackend, question: ModelQuestion) -> tuple[dict | None, dict]:
        started = time.perf_counter()
        tries = backend.retries + 1 if backend.kind == OPENAI else 1
        failure = BackendFailedError("error", "not called")
        for attempt in range(tries):
            if attempt:
                time.sleep(backend.backoff_s * 2 ** (attempt - 1))
            try:
                raw = _call_openai(backend, question) if backend.kind == OPENAI else question.local_policy()
                answer = _validated(raw, question)
                return answer, _attempt(backend, "ok", "", time.perf_counter() - started, attempt + 1)
            except BackendFailedError as exc:
                failure = exc
            except Exception as exc:  # a broken local policy is a failure of that link, like any other
                failure = BackendFailedError("error", f"{type(exc).__name__}: {exc}")
        return None, _attempt(backend, failure.outcome, failure.detail, time.perf_counter() - started, tries)


def _endpoint_backend(name: str, url: str) -> ModelBackend:
    """An endpoint of ``endpoints``: a key in its URL's userinfo becomes its API key."""
    register_url(url)
    user, password = url_credentials(url)
    return ModelBackend(name=name, kind=OPENAI, url=without_userinfo(url), api_key=password or user)


def _call_openai(backend: ModelBackend, question: ModelQuestion) -> object:
    if not backend.url:
        raise BackendFailedError("misconfigured", "no url")
    register_secret(backend.api_key)
    headers = {"Content-Type": "application/json"}
    if backend.api_key:
        headers["Authorization"] = f"Bearer {backend.api_key}"
    body = {
        "model": backend.model,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": question.system},
            {"role": "user", "content": question.prompt},
        ],
    }
    try:
        response = requests.post(
            backend.url.rstrip("/") + "/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=backend.timeout_s,
        )
    except requests.Timeout:
        raise BackendFailedError("timeout", f"no answer within {backend.timeout_s}s") from None
    except requests.ConnectionError as exc:
        raise BackendFailedError("unreachable", type(exc).__name__) from None
    own = [backend.api_key, *url_credentials(backend.url)]
    if response.status_code >= 400:
        raise BackendFailedError(f"http_{response.status_code}", scrub(response.text[:200], own))
    try:
        content = response.json()["choices"][0]["message"]["content"]
        return json.loads(content) if isinstance(content, str) else content
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendFailedError("unparseable", scrub(f"{type(exc).__name__}: {str(exc)[:200]}", own)) from None


def _validated(raw: object, question: ModelQuestion) -> dict:
    if not isinstance(raw, dict):
        raise BackendFailedError("unparseable", f"answer is {type(raw).__name__}, not a JSON object")
    try:
        jsonschema.validate(raw, question.answer_schema)
    except jsonschema.ValidationError as exc:
        raise BackendFailedError("invalid", exc.message[:300]) from None
    try:
        question.accept(raw)
    except Exception as exc:
        raise BackendFailedError("invalid", str(exc)[:300]) from None
    return raw


def _attempt(backend: ModelBackend, outcome: str, detail: str, seconds: float, tries: int) -> dict:
    return {
        "backend": backend.name,
        "kind": backend.kind,
        "model": backend.model if backend.kind == OPENAI else None,
        "endpoint": redact_url(backend.url),
        "outcome": outcome,
        "detail": scrub(detail),
        "latency_ms": round(seconds * 1000, 1),
        "tries": tries,
    }
