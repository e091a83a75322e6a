"""Real `frugal` server processes for tests (see `frugal.processes`)."""

from __future__ import annotations

from frugal.processes import FrugalProcess as Server
from frugal.processes import free_port
from frugal.processes import start as start_server

__all__ = ["Server", "free_port", "start_server"]
