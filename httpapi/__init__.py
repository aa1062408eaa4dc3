"""The REST API (SPEC section 6): what a launcher needs is :class:`Server` and
:class:`Settings`; the routes, one module per resource, live behind them."""

from .server import Server
from .state import Settings

__all__ = ["Server", "Settings"]
