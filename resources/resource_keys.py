"""The resource keys foureyes' own assets, checks and sensors ask for.

They are prefixed so that they never collide with a project's own resources: a project
may well have a ``warehouse`` or an ``io_manager`` of its own, and keeps them. The default
action target is the one exception, named for what it is: ``books``.
"""

WAREHOUSE = "foureyes_warehouse"
IO_MANAGER = "foureyes_io_manager"
CONTROL_PLANE = "foureyes_control_plane"
FALLBACK = "foureyes_fallback"
MODELS = "foureyes_models"
LINEAGE = "foureyes_lineage"
DEFAULT_TARGET = "books"
INPUT_IO_MANAGER = "io_manager"  # the project's default IO manager: in-process runs load inputs through it

FOUREYES_KEYS = (WAREHOUSE, IO_MANAGER, CONTROL_PLANE, FALLBACK, MODELS, LINEAGE)
