"""Prefect's ``@flow``, minus two costs a publish does not need: FastAPI, and a walk of its result.

Every call of a flow records its parameters with the run. Prefect's ``Flow.serialize_parameters``
does it with ``fastapi.encoders.jsonable_encoder``, and that import loads all of FastAPI and
Starlette in a process that never serves HTTP: 0.2–0.45 s of a whole ``clinicpress publish``
process on this machine (issue 16, goal 1; ``bench/README.md``). pydantic's
``to_jsonable_python``, loaded already, gives the same JSON for what our flows take (text, numbers,
booleans, None, lists of them); a value it cannot encode is recorded as ``<TypeName>``, as Prefect
does. Futures and states are recorded as Prefect records them (its own code, called for them).

When a flow returns, Prefect walks the whole return value looking for futures to wait on. A
catalog's publish result (every article's report, every link) is a deep tree of models: 0.3–0.4 s
of a 1,000-article no-op. Our flows return finished values, never futures, so a flow body may
return ``caller_unquotes(result)``: when the flow was called as a function (the CLI, a parent
flow), that is the result quoted, which Prefect does not look inside, and :meth:`JsonFlow.__call__`
hands the caller the value itself. A run started from a deployment has no such caller (its result
may be persisted and read by another process: ``flows/fanout.py``), so it returns the value as is.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Flow
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote
from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = ["JsonFlow", "caller_unquotes", "flow"]

P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V")

# True while JsonFlow.__call__ runs a flow: the one caller that unquotes what the flow returns.
_CALLED: ContextVar[bool] = ContextVar("clinicpress_flow_called", default=False)


def caller_unquotes(value: V) -> V:
    """What a flow body returns: ``value`` quoted when :meth:`JsonFlow.__call__` called the flow
    (it unquotes it), else ``value`` itself. Typed as the value: callers never see the quote."""
    return cast(V, quote(value)) if _CALLED.get() else value


class JsonFlow(Flow[P, R]):
    """A ``prefect.Flow`` whose parameters are serialized by pydantic, not FastAPI, and whose
    body may return a quoted value (not walked by Prefect; unquoted for the caller)."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:  # type: ignore[override]  # no return_state
        called = _CALLED.set(True)
        try:
            result: Any = super().__call__(*args, **kwargs)
        finally:
            _CALLED.reset(called)
        return cast(R, result.unquote() if isinstance(result, quote) else result)

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        plain = {
            key: value
            for key, value in parameters.items()
            if not isinstance(value, PrefectFuture | State) and not _bound(self, value)
        }
        # Prefect's own code for what it treats specially (the bound self, futures, states).
        serialized = super().serialize_parameters({k: v for k, v in parameters.items() if k not in plain})
        for key, value in plain.items():
            try:
                serialized[key] = to_jsonable_python(value)
            except (PydanticSerializationError, ValueError, TypeError, RecursionError):
                serialized[key] = f"<{type(value).__name__}>"
        return {key: serialized[key] for key in parameters if key in serialized}


def _bound(flow: Flow[Any, Any], value: object) -> bool:
    """The instance or class a method flow is bound to: Prefect leaves it out of the record."""
    fn = flow.fn
    return (flow.ismethod and value is getattr(fn, "__prefect_self__", None)) or (
        flow.isclassmethod and value is getattr(fn, "__prefect_cls__", None)
    )


def flow(**options: Any) -> Callable[[Callable[P, R]], JsonFlow[P, R]]:
    """``@prefect.flow(**options)``, making a :class:`JsonFlow`."""

    def make(fn: Callable[P, R]) -> JsonFlow[P, R]:
        return JsonFlow(fn, **options)

    return make
