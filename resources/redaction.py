"""Redaction: no credential that enters through configuration ever leaves it.

Secrets arrive in a few shapes: a password (or token) in a URL's userinfo, a secret-named
query parameter (``?api_key=...``), an API key or bearer token given on its own. Each
resource that holds one registers it here when it is configured, shows and stores its URLs
only through ``redact_url``, and scrubs the text of every error its HTTP or database client
raises (``scrub``) before that text can reach a store, a log, lineage or a terminal. The
stores scrub once more on the way in, so a secret that slipped past a resource still never
lands.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable

REDACTED = "***"
MIN_SECRET_LENGTH = 3  # shorter values would blank out ordinary text; URLs are still scrubbed by shape
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|authori[sz]ation|credential|cookie|signature|sig$", re.I)
_NOT_SECRET_NAMES = frozenset(
    {"idempotency_key", "idempotency-key", "idempotency_keys", "natural_key", "sort_key", "token_id"}
)  # names, not secrets: an audit entry shows which actions were retried, which token was revoked
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s?#'\"<>]*)@")
_BEARER = re.compile(r"(?P<kind>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=\-]{6,}", re.I)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;\s\"'](?:[A-Za-z_\-]*(?:key|token|secret|passw|pwd|sig)[A-Za-z_\-]*)[=:]\s*)(?P<value>[^&\s\"',;]+)",
    re.I,
)

_secrets: set[str] = set()
_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """Whether a parameter or field name says it holds a credential (``api_key``, ``token``...)."""
    return name.lower() not in _NOT_SECRET_NAMES and bool(_SECRET_NAME.search(name))


def register_secret(*values: object) -> None:
    """Remember credential values so that ``scrub`` removes them from any text, wherever it appears.

    Only plain strings count: a ``dg.EnvVar`` (a ``str`` subclass holding the variable's *name*)
    is registered once Dagster resolves it into the resource it builds for a run.
    """
    with _lock:
        for value in values:
            if type(value) is str and len(value) >= MIN_SECRET_LENGTH:
                _secrets.add(value)
                unquoted = urllib.parse.unquote(value)
                if unquoted != value and len(unquoted) >= MIN_SECRET_LENGTH:
                    _secrets.add(unquoted)


def register_url(url: str | None) -> None:
    """Remember the credentials a URL carries: its userinfo and any secret-named query values."""
    if not url or type(url) is not str:
        return
    parts = urllib.parse.urlsplit(url)
    register_secret(parts.password, _userinfo(url) if parts.password is None else None)
    register_secret(*(v for k, v in urllib.parse.parse_qsl(parts.query) if is_secret_name(k)))


def url_credentials(url: str) -> tuple[str | None, str | None]:
    """The (user, password) of a URL's userinfo, percent-decoded; (None, None) when it has none."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return user, password


def without_userinfo(url: str) -> str:
    """The URL as it is sent once its credentials travel elsewhere (an auth header): no userinfo."""
    return _USERINFO.sub(lambda m: m.group("scheme"), url, count=1)


def redact_url(url: str | None) -> str | None:
    """The URL as it may be shown and stored: no userinfo, secret-named query values masked.

    Examples:
        >>> redact_url("postgresql+psycopg://risk:hunter2@db.internal:5432/books?sslmode=require")
        'postgresql+psycopg://db.internal:5432/books?sslmode=require'
        >>> redact_url("https://models.example/v1?api_key=sk-123&region=eu")
        'https://models.example/v1?api_key=***&region=eu'
        >>> redact_url("sqlite:////var/lib/foureyes/control.db")
        'sqlite:////var/lib/foureyes/control.db'
    """
    if url is None:
        return None
    return scrub(str(url))


def scrub(text: object, secrets: Iterable[str | None] = ()) -> str:
    """Text with every known secret, URL userinfo, bearer token and secret-named value masked."""
    out = "" if text is None else str(text)
    with _lock:
        known = sorted({s for s in (*_secrets, *(s for s in secrets if s)) if len(s) >= MIN_SECRET_LENGTH}, key=len)
    out = _USERINFO.sub(lambda m: m.group("scheme"), out)
    out = _BEARER.sub(lambda m: m.group("kind") + REDACTED, out)
    out = _QUERY_SECRET.sub(_masked_value, out)
    for secret in reversed(known):  # longest first, so a secret containing another goes whole
        out = out.replace(secret, REDACTED)
    return out


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs every record it passes (installed on third-party client loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.exc_info:
            record.msg, record.args = cleaned, None
            if record.exc_info:
                record.msg = f"{cleaned} ({scrub(record.exc_info[1])})"
                record.exc_info = record.exc_text = None
        return True


def scrub_logger(name: str) -> None:
    """Scrub every record of a logger and its children (their handlers see only redacted text)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ScrubbingFilter) for f in logger.filters):
        logger.addFilter(ScrubbingFilter())


def _masked_value(match: re.Match) -> str:
    name = match.group("name")
    bare = name[1:].rstrip(":= \t")
    return name + REDACTED if is_secret_name(bare) else match.group(0)


def _userinfo(url: str) -> str | None:
    match = _USERINFO.match(url)
    return urllib.parse.unquote(match.group("userinfo")) if match and match.group("userinfo") else None
