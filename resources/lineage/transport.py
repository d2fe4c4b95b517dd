"""An OpenLineage transport that stores events in the foureyes control plane.

It is a standard openlineage-python transport (a ``Config`` with ``from_dict`` and a
``Transport`` with ``emit``), so it can be named in ``openlineage.yml`` or combined with the
http, kafka or file transports in a composite one::

    transport:
      type: foureyes          # registered on import; or its class path (TRANSPORT_CLASS)
      url: sqlite:////data/control.db
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.serde import Serde
from openlineage.client.transport.transport import Config, Transport

from foureyes.resources.control_plane.resource import control_engine
from foureyes.resources.lineage import TRANSPORT_CLASS, TRANSPORT_TYPE
from foureyes.resources.lineage.store import LineageStore


@attr.define
class ControlPlaneConfig(Config):
    url: str = ""

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ControlPlaneConfig:
        if not params.get("url"):
            raise ValueError("the foureyes control-plane transport needs 'url' (a SQLAlchemy URL)")
        return cls(url=str(params["url"]))


STORE_TRANSPORT = TRANSPORT_CLASS


class ControlPlaneTransport(Transport):
    kind = TRANSPORT_TYPE
    config_class = ControlPlaneConfig

    def __init__(self, config: ControlPlaneConfig):
        self.config = config
        self._store = LineageStore(control_engine(config.url))

    def emit(self, event: Any) -> None:
        self._store.add(event if isinstance(event, dict) else Serde.to_dict(event))
