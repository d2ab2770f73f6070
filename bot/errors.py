"""kefu's one exception hierarchy; errors of libraries underneath are mapped at the boundary."""

from __future__ import annotations

from pathlib import Path


class KefuError(Exception):
    """Base of every error kefu raises on purpose."""


class ConfigError(KefuError):
    """The TOML config is missing, malformed or has a bad value.

    The message names the file, the line (when known), the key and the bad value,
    so a merchant can fix it without reading code.
    """

    def __init__(self, path: Path | str, key: str | None, problem: str, line: int | None = None):
        self.path = Path(path)
        self.key = key
        self.problem = problem
        self.line = line
        where = str(self.path) + (f":{line}" if line else "")
        what = f" key '{key}':" if key else ""
        super().__init__(f"{where}:{what} {problem}")


class FaqError(KefuError):
    """An FAQ file cannot be read or has a bad entry; names file and line."""

    def __init__(self, path: Path | str, line: int | None, problem: str):
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = str(self.path) + (f":{line}" if line else "")
        super().__init__(f"{where}: {problem}")


class AdapterError(KefuError):
    """A channel adapter cannot be found or started."""


class DeliveryError(KefuError):
    """A push channel could not deliver a reply; the core retries later.

    `permanent` marks failures that retrying cannot fix (e.g. a 4xx from the
    receiver), so the delivery is given up at once instead of after every attempt;
    `retry_after` replaces the backoff when the receiver named a time; `held` keeps the reply
    unsent, not retried, until the shopper writes again (then it goes, in its order).
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None,
                 held: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after  # the receiver said when to try again (Telegram's flood control)
        self.held = held  # nothing can go until the shopper writes again (WhatsApp's 24-hour window)


class ConversationNotFoundError(KefuError):
    """An agent named a conversation that does not exist."""


class HandoffConflictError(KefuError):
    """The conversation is not in a state that allows the action (someone else moved it first).

    Carries the state found (a `HandoffState` value) and the agent holding it, so an API can say who has it.
    """

    def __init__(self, message: str, state: str, agent: str | None):
        super().__init__(message)
        self.state = state
        self.agent = agent


class InvalidRequestError(KefuError):
    """A caller named something malformed (a conversation address, a period); an adapter answers 400.

    `field` names the part of the request to fix.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class OverloadedError(KefuError):
    """Too many messages are waiting for an answer: this one was refused *before* it was stored.

    Nothing of it is kept, so the sender must send it again; `retry_after` (seconds, at
    least 1) is kefu's estimate of when there is room. HTTP channels answer 429 with it.
    """

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
