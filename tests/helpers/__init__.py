"""Shared test helpers (tool checks, test media, stream servers)."""
