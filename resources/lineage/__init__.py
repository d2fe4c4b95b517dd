"""OpenLineage for foureyes: the emitter steps use, the control-plane store and transport, the receiver.

foureyes' transport is registered with openlineage-python as ``type: foureyes`` when
``foureyes`` is imported, so an ``openlineage.yml`` can name it like a built-in one::

    transport:
      type: foureyes
      url: sqlite:////data/control.db
"""

TRANSPORT_TYPE = "foureyes"
TRANSPORT_CLASS = "foureyes.resources.lineage.transport.ControlPlaneTransport"


def register_transport() -> None:
    """Make ``type: foureyes`` resolve to the control-plane transport (loaded only when a client uses it)."""
    from openlineage.client.transport import get_default_factory  # noqa: PLC0415 (keep the package light)

    get_default_factory().register_transport(TRANSPORT_TYPE, TRANSPORT_CLASS)
