"""Which methods of a catalog implementation its error translator wraps (SQLite, PostgreSQL).

Every public instance method of the class and of its bases (``PosixTree``'s operations
included) is wrapped once: a wrapper is marked, so a subclass of a translated class does not
wrap its inherited methods twice.
"""

from __future__ import annotations

import inspect
from typing import Callable

_MARK = "__translated__"


def public_methods(klass: type) -> list[tuple[str, Callable]]:
    """(name, function) of the public instance methods of ``klass`` and its bases not wrapped yet."""
    return [(name, method) for name in dir(klass)
            if not name.startswith("_") and inspect.isfunction(method := getattr(klass, name))
            and not isinstance(inspect.getattr_static(klass, name), staticmethod)
            and not getattr(method, _MARK, False)]


def marked(wrapper: Callable) -> Callable:
    """``wrapper`` marked as a translating wrapper."""
    setattr(wrapper, _MARK, True)
    return wrapper
