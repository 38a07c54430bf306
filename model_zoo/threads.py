"""``torch_threads(n)``: torch's CPU thread count for the duration of a block, restored afterwards
(``torch.set_num_threads`` is process-wide state; a library call must not leave it changed)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["torch_threads", "with_torch_threads"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (None or 0: leave the setting alone)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def with_torch_threads(threads_of: Callable[..., int | None]) -> Callable[[F], F]:
    """Decorator: run the function under ``torch_threads(threads_of(*args, **kwargs))``."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with torch_threads(threads_of(*args, **kwargs)):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
