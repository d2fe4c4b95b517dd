"""Sensors that keep the supervisor loop moving with nobody watching: approvals, outbox, watchdog."""
