"""Operating foureyes: the desk every operator interface goes through (scopes checked, calls audited)."""
