"""The Agent stage (propose): the proposals asset, the context an agent is given, the tier it runs in."""
