"""Who may decide: approver identities, normalised, and the principals that may never vote.

A typed name is compared the way a person would read it, not byte for byte: Unicode is
folded to its compatibility form (full-width letters, ligatures, accents), case is ignored,
and spaces, dots, dashes, underscores, colons and slashes do not count — so ``alice``,
``Alice``, ``ＡＬＩＣＥ`` and ``a.lice`` are one approver, and a second vote by any of them is
refused. Agents are principals too, named ``agent:<name>``; an agent, in any spelling (its
bare name included), can never approve or reject anything, and neither can ``system``, the
principal that records expiries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from foureyes.resources.errors import FoureyesError

AGENT_PREFIX = "agent:"
SYSTEM = "system"
_SEPARATORS = re.compile(r"[\s._\-:/\\|,;'`\"]+")


class ApprovalError(FoureyesError):
    """An approval decision that is not allowed (self-approval, twice, too late, unknown id)."""


def principal(name: str) -> str:
    """The name as it is recorded: Unicode compatibility form, case folded, whitespace collapsed.

    Examples:
        >>> principal("  Alice   Smith ")
        'alice smith'
        >>> principal("ＡＧＥＮＴ ： margin_calls")
        'agent:margin_calls'
    """
    folded = _folded(name)
    folded = re.sub(r"\s*:\s*", ":", folded)
    return " ".join(folded.split())


def identity_key(name: str) -> str:
    """What two names must share to be the same principal: letters and digits only, accents dropped.

    Examples:
        >>> identity_key("Alice") == identity_key("a.lice") == identity_key("ÁLICE")
        True
    """
    decomposed = unicodedata.normalize("NFKD", _folded(name))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub("", plain)


def agent_principal(agent: str) -> str:
    return f"{AGENT_PREFIX}{agent}"


def check_voter(name: str, *, proposer: str, agents: Iterable[str]) -> str:
    """The recorded principal of a voter, or an ``ApprovalError`` saying why it may not vote.

    ``agents`` are every agent the store knows: none of them, by bare name or as ``agent:``,
    may vote, nor may the proposer or ``system``.
    """
    recorded = principal(name)
    if not identity_key(recorded):
        raise ApprovalError(f"an approver must be named (got {name!r})")
    key = identity_key(recorded)
    if recorded.startswith(AGENT_PREFIX) or key in {
        identity_key(n) for agent in agents for n in (agent, agent_principal(agent))
    }:
        raise ApprovalError(f"{name!r} is an agent principal: agents never approve or reject")
    if key == identity_key(SYSTEM):
        raise ApprovalError(f"{name!r} is reserved for decisions foureyes records itself (expiries)")
    if key == identity_key(proposer):
        raise ApprovalError(f"{name!r} proposed this action and cannot approve or reject it")
    return recorded


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", str(name)).casefold()
