"""The handler contract: a handler takes one event; ``receives`` gives it the event's parsed payload model.

Each service's ``handlers.py`` maps event types to such handlers (``shared.bus.Consumer`` runs them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from shared.events import Event, Payload

Handler = Callable[[Event], None]
P = TypeVar("P", bound=Payload)


def receives(model: type[P]) -> Callable[[Callable[..., None]], Handler]:
    """Make ``fn(..., event, payload: model)`` a handler called as ``fn(..., event)``: the payload arrives parsed
    (and upcast) as its model, the same one ``shared.events.PAYLOADS`` registers for the event's type::

        @receives(VersionStored)
        def on_version_stored(self, event: Event, p: VersionStored) -> None: ...
    """

    def wrap(fn: Callable[..., None]) -> Handler:
        @functools.wraps(fn)
        def handler(*args: Any) -> None:
            *head, event = args
            payload = event.typed()
            if not isinstance(payload, model):
                raise TypeError(f"{fn.__qualname__} handles {model.__name__}, not {event.type}")
            fn(*head, event, payload)

        return handler

    return wrap
