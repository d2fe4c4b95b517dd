"""The ``foureyes`` command line: thin views over the control plane of a code location."""
