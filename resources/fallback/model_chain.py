"""The model chain: ask an ordered list of model backends until one gives a valid answer.

Each backend — an OpenAI-compatible endpoint (spoken to with the ``openai`` SDK), or the
agent's own deterministic local policy — gets a timeout and a few retries with backoff,
behind a circuit breaker kept in the control plane. An answer that is not JSON, or not valid
against the question's JSON schema, or that the agent's own acceptance test refuses, is a
failure of that backend, and the chain moves on. When every backend failed the chain raises
``ModelChainExhaustedError`` and the agent falls back to its deterministic baseline. Every
attempt — which backend, what happened, how long it took — is returned, for the decision
log. Secrets never leave the request: an endpoint's URL is recorded without its credentials
(a ``user:key@`` in it is sent as the bearer key), and what an endpoint answers is scrubbed of
our credentials before it is kept.

``ChainWalk`` is one walk down the chain, shared by ``ModelChainResource.ask`` (one JSON
question) and the agent-library adapters (a conversation with tools), so breakers, retries and
the attempt log mean the same whoever asks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import jsonschema
from pydantic import Field

from foureyes.resources.control_plane.resource import control_engine
from foureyes.resources.errors import FoureyesError
from foureyes.resources.fallback.circuit_breakers import CircuitBreakers
from foureyes.resources.fallback.openai_backend import BackendFailedError, ResponseFormat, json_answer
from foureyes.resources.redaction import redact_url, register_url, scrub, url_credentials, without_userinfo
from foureyes.resources.settings import parse_models

OPENAI, LOCAL_POLICY = "openai", "local_policy"


class ModelChainExhaustedError(FoureyesError):
    """No backend of the chain produced a valid answer."""

    def __init__(self, attempts: list[dict]):
        self.attempts = attempts
        summary = "; ".join(f"{a['backend']}: {a['outcome']}" for a in attempts) or "no backend configured"
        super().__init__(f"every model backend failed ({summary})")


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
    url: str | None = Field(
        default=None, description="Base URL, e.g. http://models:8000 or https://api.example.com/v1 (the /v1 API)."
    )
    model: str = Field(default="default", description="Model name sent to the endpoint.")
    api_key: str | None = Field(default=None, description="Bearer token; pass it with dg.EnvVar, never in code.")
    timeout_s: float = Field(default=10.0, description="Per-request timeout.")
    response_format: ResponseFormat = Field(
        default="json_schema",
        description="How JSON is asked for: json_schema, json_object (older servers) or none; validated either way.",
    )
    retries: int = Field(default=1, description="Extra attempts after a failure (timeouts, 5xx, bad answers).")
    backoff_s: float = Field(default=0.5, description="First backoff; doubled for each retry.")
    enabled: bool = Field(default=True, description="False skips this backend (recorded as disabled).")
    agents: list[str] | None = Field(
        default=None, description="The agents this backend answers (None: every agent); the others skip it."
    )


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

    def ask(self, question: ModelQuestion, agent: str | None = None) -> ModelAnswer:
        walk = self.walk(agent)
        for backend in walk.links():
            tries = walk.tries(backend)
            for _ in tries:
                with tries.one():
                    answer = _validated(_answer(backend, question), question)
                if tries.succeeded:
                    return ModelAnswer(answer, backend.name, walk.attempts, question.prompt_hash)
        raise ModelChainExhaustedError(walk.attempts)

    def walk(self, agent: str | None = None) -> ChainWalk:
        """A new walk down the chain, for one question or one step of a conversation of ``agent``."""
        breakers = CircuitBreakers(
            control_engine(self.control_url),
            self.breaker_threshold,
            dt.timedelta(seconds=self.breaker_cooldown_s),
        )
        chain = [b for b in self.chain() if agent is None or b.agents is None or agent in b.agents]
        return ChainWalk(chain, breakers)

    def chain(self) -> list[ModelBackend]:
        """The backends in the order they are tried: the configured endpoints, then ``backends``."""
        return [*(_endpoint_backend(name, url) for name, url in parse_models(self.endpoints)), *self.backends]


class ChainWalk:
    """One walk down the chain: the links to try, each try timed and counted, the breakers kept.

    ``links`` yields each enabled backend whose breaker lets it through (the others are
    recorded as skipped). ``tries`` paces one backend's tries; each is made inside
    ``with tries.one():``, which records an answer that gets through as that backend's success,
    and any failure — a ``BackendFailedError`` or anything else, since a broken local policy or
    adapter must not end the chain — as a failed try. Written so, a sync question and an async
    conversation share every rule of the walk.
    """

    def __init__(self, backends: list[ModelBackend], breakers: CircuitBreakers):
        self._backends = backends
        self._breakers = breakers
        self.attempts: list[dict] = []

    def links(self, kinds: tuple[str, ...] = (OPENAI, LOCAL_POLICY)) -> Iterator[ModelBackend]:
        for backend in self._backends:
            if backend.kind not in kinds:
                self.attempts.append(_attempt(backend, "not_applicable", f"a {backend.kind} link cannot answer", 0, 0))
            elif not backend.enabled:
                self.attempts.append(_attempt(backend, "disabled", "disabled in configuration", 0.0, 0))
            else:
                allowed, why = self._breakers.allows(backend.name)
                if allowed:
                    yield backend
                else:
                    self.attempts.append(_attempt(backend, "circuit_open", why, 0.0, 0))

    def tries(self, backend: ModelBackend) -> Tries:
        return Tries(self, backend)

    def record(self, backend: ModelBackend, failure: BackendFailedError | None, seconds: float, tries: int) -> None:
        if failure is None:
            self._breakers.succeeded(backend.name)
            self.attempts.append(_attempt(backend, "ok", "", seconds, tries))
        else:
            self._breakers.failed(backend.name, f"{failure.outcome}: {failure.detail}")
            self.attempts.append(_attempt(backend, failure.outcome, failure.detail, seconds, tries))


class Tries:
    """The tries of one backend: its retries with doubling backoff; a local policy gets one."""

    def __init__(self, walk: ChainWalk, backend: ModelBackend):
        self._walk = walk
        self._backend = backend
        self._count = backend.retries + 1 if backend.kind == OPENAI else 1
        self._started = time.perf_counter()
        self._made = 0
        self.succeeded = False
        self._failure = BackendFailedError("error", "not called")

    def __iter__(self) -> Iterator[int]:
        for number in range(self._count):
            if number:
                time.sleep(self._backend.backoff_s * 2 ** (number - 1))
            yield number
        self._walk.record(self._backend, self._failure, time.perf_counter() - self._started, self._count)

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        """One try: a clean exit is the backend's success, an exception a failed try (swallowed)."""
        self._made += 1
        try:
            yield
        except BackendFailedError as exc:
            self._failure = exc
        except Exception as exc:
            self._failure = BackendFailedError("error", f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded = True
            self._walk.record(self._backend, None, time.perf_counter() - self._started, self._made)


def _endpoint_backend(name: str, url: str) -> ModelBackend:
    """An endpoint of ``endpoints``: a key in its URL's userinfo becomes its API key."""
    register_url(url)
    user, password = url_credentials(url)
    return ModelBackend(name=name, kind=OPENAI, url=without_userinfo(url), api_key=password or user)


def _answer(backend: ModelBackend, question: ModelQuestion) -> object:
    return json_answer(backend, question) if backend.kind == OPENAI else question.local_policy()


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
