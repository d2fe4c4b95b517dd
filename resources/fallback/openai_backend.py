"""An OpenAI-compatible endpoint as a link of the model chain, spoken to with the ``openai`` SDK.

The SDK owns the wire (base URL, authentication, timeout, connection handling); the chain owns
the policy. So the SDK's own retries are off: each try is counted and recorded by the chain,
which also retries an answer that failed its schema, something the SDK cannot judge. Every
failure becomes a ``BackendFailedError`` with an outcome the decision log and the circuit
breaker understand, its text scrubbed of the endpoint's credentials.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from foureyes.resources.redaction import register_secret, scrub, url_credentials

if TYPE_CHECKING:
    from foureyes.resources.fallback.model_chain import ModelBackend, ModelQuestion

#: How a backend is asked for JSON: a JSON schema (vLLM, Ollama, hosted APIs), any JSON object
#: (older servers), or nothing (the prompt alone). The answer is validated against the schema
#: whichever is used.
ResponseFormat = Literal["json_schema", "json_object", "none"]


class BackendFailedError(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def base_url(url: str) -> str:
    """The SDK's base URL: ``http://host:8000`` and ``http://host:8000/v1`` both mean the ``/v1`` API."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def client_options(backend: ModelBackend) -> dict[str, object]:
    """What both the sync and the async SDK client are built with, for one backend."""
    if not backend.url:
        raise BackendFailedError("misconfigured", "no url")
    register_secret(backend.api_key)
    return {
        "base_url": base_url(backend.url),
        "api_key": backend.api_key or "not-needed",  # local servers take none; the SDK insists on one
        "timeout": backend.timeout_s,
        "max_retries": 0,  # the chain counts and records every try
    }


def sdk_failure(exc: BaseException, backend: ModelBackend) -> BackendFailedError:
    """An ``openai`` SDK error as the chain's outcome: timeout, unreachable, http_<status> or error."""
    import openai  # noqa: PLC0415 (imported with the first call, as the SDK is large)

    own = [backend.api_key, *url_credentials(backend.url)]
    if isinstance(exc, openai.APITimeoutError):
        return BackendFailedError("timeout", f"no answer within {backend.timeout_s}s")
    if isinstance(exc, openai.APIConnectionError):
        return BackendFailedError("unreachable", type(exc.__cause__ or exc).__name__)
    if isinstance(exc, openai.APIStatusError):
        return BackendFailedError(f"http_{exc.status_code}", scrub(str(exc.message)[:200], own))
    return BackendFailedError("unparseable", scrub(f"{type(exc).__name__}: {str(exc)[:200]}", own))


def chat_message(backend: ModelBackend, **request: object) -> Any:
    """The message of the endpoint's first choice for one chat-completions request; how it failed, as an outcome."""
    import openai  # noqa: PLC0415 (imported with the first call, as the SDK is large)

    client = openai.OpenAI(**client_options(backend))
    try:
        completion = client.chat.completions.create(model=backend.model, **request)
        return completion.choices[0].message
    except openai.OpenAIError as exc:
        raise sdk_failure(exc, backend) from None
    except (ValueError, IndexError, AttributeError, TypeError) as exc:  # a 200 that is no chat completion
        raise sdk_failure(exc, backend) from None
    finally:
        client.close()


def json_answer(backend: ModelBackend, question: ModelQuestion) -> object:
    """The endpoint's answer to ``question``, parsed from JSON (validated by the chain)."""
    content = chat_message(
        backend,
        temperature=0,
        messages=[
            {"role": "system", "content": question.system},
            {"role": "user", "content": question.prompt},
        ],
        **_response_format(backend.response_format, question.answer_schema),
    ).content
    try:
        return json.loads(content) if isinstance(content, str) else content
    except ValueError as exc:
        raise BackendFailedError("unparseable", f"the answer is not JSON ({exc})") from None


def _response_format(kind: ResponseFormat, schema: dict) -> dict[str, object]:
    if kind == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}}
    if kind == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}
