"""One error base for foureyes, and narrow subclasses that name the bad value.

Every message says what was wrong and what would have been accepted, so that an operator
reading one line at 3 AM knows what to fix without opening the code.
"""

from __future__ import annotations


class FoureyesError(Exception):
    """Base of every error foureyes raises on purpose."""


class ConfigurationError(FoureyesError):
    """A setting (environment variable, resource field, run config) has an unusable value."""


class PartitionNotFoundError(FoureyesError):
    """An asset partition was asked for but was never written to the warehouse."""

    def __init__(self, asset: str, partition: str, written: list[str], where: str):
        self.asset = asset
        self.partition = partition
        self.written = written
        if written:
            shown = written if len(written) <= 6 else [*written[:3], "...", *written[-2:]]
            known = f"written partitions ({len(written)}): {', '.join(shown)}"
        else:
            known = "no partition of it was ever written"
        super().__init__(f"asset '{asset}' has no partition '{partition}' in the warehouse ({where}); {known}")


class SchemaConflictError(FoureyesError):
    """A frame's column cannot be stored in the column the table already has."""


class UnsupportedDtypeError(FoureyesError):
    """A frame's column has a dtype the warehouse does not know how to store faithfully."""


class StoreUnavailableError(FoureyesError):
    """A configured database cannot be reached (down, refused, wrong host)."""


class ControlPlaneError(FoureyesError):
    """The control-plane store is unusable (wrong schema version, unreachable)."""


class InputDataError(FoureyesError):
    """An input partition cannot be used as it is (missing columns, unusable values)."""


class LineageNotFoundError(FoureyesError):
    """No lineage is recorded for the asked-for output."""


class AgentDefinitionError(FoureyesError):
    """An agent declaration is inconsistent (missing columns, unknown inputs, bad policy)."""


class ActionTargetError(FoureyesError):
    """An executor target refused or failed an action."""


class TargetUnavailableError(ActionTargetError):
    """The target did not confirm the action (down, slow, 5xx, garbled answer).

    ``sent`` says whether the action may have reached it: False only when it certainly did not
    (the connection was refused, the target said it is unavailable before acting).
    """

    def __init__(self, message: str, *, sent: bool):
        super().__init__(message)
        self.sent = sent


class TargetRefusedError(ActionTargetError):
    """The target refused the action for good (a 4xx): a human must look before any retry."""
