"""The model chain against real OpenAI-compatible servers on loopback."""

from __future__ import annotations

import time

import pytest

from foureyes.resources.fallback.model_chain import (
    ModelBackend,
    ModelChainExhaustedError,
    ModelChainResource,
    ModelQuestion,
)
from tests.servers import ERROR, GARBAGE, INVALID, SLOW, ModelServer

SCHEMA = {
    "type": "object",
    "required": ["verdict"],
    "properties": {"verdict": {"enum": ["hold", "escalate"]}},
}


def _question(accept=lambda a: None) -> ModelQuestion:
    return ModelQuestion(
        system="decide",
        prompt="portfolio A at 91% of its limit",
        answer_schema=SCHEMA,
        local_policy=lambda: {"verdict": "hold"},
        accept=accept,
    )


@pytest.fixture
def servers():
    started = [ModelServer(lambda prompt: {"verdict": "escalate"}, slow_s=2.0).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def _chain(url: str, servers, **kwargs) -> ModelChainResource:
    return ModelChainResource(
        control_url=url,
        backends=[
            ModelBackend(name="primary", kind="openai", url=servers[0].url, timeout_s=0.5, retries=1, backoff_s=0.01),
            ModelBackend(name="secondary", kind="openai", url=servers[1].url, timeout_s=0.5, retries=0),
            ModelBackend(name="local", kind="local_policy"),
        ],
        **kwargs,
    )


def test_the_first_healthy_backend_answers(tmp_path, servers):
    answer = _chain(f"sqlite:///{tmp_path}/c.db", servers).ask(_question())
    assert (answer.answer, answer.backend) == ({"verdict": "escalate"}, "primary")
    assert [(a["backend"], a["outcome"], a["tries"]) for a in answer.attempts] == [("primary", "ok", 1)]
    request = servers[0].requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["messages"][-1]["content"].startswith(
        "portfolio A"
    )


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        (ERROR, "http_500"),
        (GARBAGE, "unparseable"),
        (SLOW, "timeout"),
        (INVALID, "invalid"),
        ("down", "unreachable"),
    ],
)
def test_a_failing_backend_is_retried_then_skipped(tmp_path, servers, mode, outcome):
    if mode == "down":
        servers[0].stop()
    else:
        servers[0].mode = mode
    answer = _chain(f"sqlite:///{tmp_path}/c.db", servers).ask(_question())
    assert answer.backend == "secondary"
    first = answer.attempts[0]
    assert (first["backend"], first["outcome"], first["tries"]) == ("primary", outcome, 2)


def test_an_answer_the_agent_refuses_moves_down_the_chain(tmp_path, servers):
    def accept(answer):
        if answer["verdict"] == "escalate":
            raise ValueError("portfolio B is missing from the answer")

    answer = _chain(f"sqlite:///{tmp_path}/c.db", servers).ask(_question(accept))
    assert answer.backend == "local" and answer.answer == {"verdict": "hold"}
    assert [a["outcome"] for a in answer.attempts] == ["invalid", "invalid", "ok"]
    assert "portfolio B is missing" in answer.attempts[0]["detail"]


def test_every_backend_failing_exhausts_the_chain(tmp_path, servers):
    for server in servers:
        server.mode = ERROR
    chain = ModelChainResource(
        control_url=f"sqlite:///{tmp_path}/c.db",
        backends=[
            ModelBackend(name="primary", kind="openai", url=servers[0].url, retries=0),
            ModelBackend(name="secondary", kind="openai", url=servers[1].url, enabled=False),
        ],
    )
    with pytest.raises(
        ModelChainExhaustedError,
        match=r"every model backend failed \(primary: http_500; secondary: disabled\)",
    ):
        chain.ask(_question())


def test_an_open_circuit_holds_across_resources_and_half_opens_after_the_cooldown(tmp_path, servers):
    url = f"sqlite:///{tmp_path}/c.db"
    servers[0].mode = ERROR
    for _ in range(3):
        _chain(url, servers, breaker_threshold=3, breaker_cooldown_s=60).ask(_question())
    calls = len(servers[0].requests)
    # a new resource (another run, another process) sees the open breaker in the control plane
    answer = _chain(url, servers, breaker_threshold=3, breaker_cooldown_s=60).ask(_question())
    assert answer.attempts[0]["outcome"] == "circuit_open" and len(servers[0].requests) == calls
    assert "circuit open after 3 failures" in answer.attempts[0]["detail"]
    servers[0].mode = "up"
    time.sleep(1.1)
    healed = _chain(url, servers, breaker_threshold=3, breaker_cooldown_s=1).ask(_question())
    assert healed.backend == "primary"  # the half-open trial succeeded: closed again


def test_the_api_key_is_sent_but_never_recorded(tmp_path, servers):
    chain = ModelChainResource(
        control_url=f"sqlite:///{tmp_path}/c.db",
        backends=[ModelBackend(name="primary", kind="openai", url=servers[0].url, api_key="sk-secret-123")],
    )
    answer = chain.ask(_question())
    assert servers[0].requests[0]["headers"]["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret" not in str(answer.attempts)
