"""Integrations with optional third-party packages (each module imports its package and says how to install it)."""
