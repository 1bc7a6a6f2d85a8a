"""The exceptions distilfn raises.

The tree::

    DistilfnError
    ├── PlanError                 a plan cannot run on this frame (raised before any request)
    │   └── ColumnNotFoundError   a step needs a column nobody provides
    ├── ModelError                a model could not answer
    │   ├── TransportError        connection failed, timed out or was dropped
    │   ├── RateLimitError        429 after every retry
    │   ├── ServerError           5xx after every retry
    │   ├── RequestRejectedError  4xx that no retry can fix (bad request, context too long)
    │   └── FatalModelError       no request can succeed: stops the whole run at once
    │       ├── AuthenticationError   401/403
    │       └── ModelUnavailableError the model cannot be started (e.g. the local engine)
    ├── ParseError                model text could not be read into the task's columns
    ├── RunAbortedError           the run stopped early (auth failure, error-rate threshold)
    └── OutputError               a streamed output cannot be written or resumed as asked
        ├── OutputLockedError     another run is writing the same output
        └── ResumeRefusedError    the output belongs to another plan or input, is damaged, or is not distilfn's

    RunInterrupted (a KeyboardInterrupt)  SIGTERM stopped a run; what finished is saved

Errors never carry secrets: backends strip API keys before raising.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceededError",
    "DistilfnError",
    "PlanError",
    "ColumnNotFoundError",
    "ModelError",
    "TransportError",
    "RateLimitError",
    "ServerError",
    "RequestRejectedError",
    "FatalModelError",
    "AuthenticationError",
    "ModelUnavailableError",
    "ParseError",
    "RunAbortedError",
    "OutputError",
    "OutputLockedError",
    "ResumeRefusedError",
    "RunInterrupted",
]


class DistilfnError(Exception):
    """Base class of every error distilfn raises on purpose."""


class PlanError(DistilfnError, ValueError):
    """The plan cannot run on the given frame or models; raised before any request."""


class ColumnNotFoundError(PlanError, KeyError):
    """A step needs a column that neither the frame nor an upstream step provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelError(DistilfnError):
    """A model could not answer a request.

    ``status`` is the HTTP status when there was one, ``retry_after`` the delay in
    seconds the server asked for.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransportError(ModelError):
    """The connection failed, timed out or was dropped."""


class RateLimitError(ModelError):
    """The server kept answering 429 after every retry."""


class ServerError(ModelError):
    """The server kept answering 5xx after every retry."""


class RequestRejectedError(ModelError):
    """The server rejected the request in a way no retry can fix (400, 404, 413, 422)."""


class FatalModelError(ModelError):
    """No request to this model can succeed; the interpreter stops the whole run."""


class AuthenticationError(FatalModelError):
    """The server refused the credentials (401/403); the whole run stops."""


class ModelUnavailableError(FatalModelError, RuntimeError):
    """The model cannot be started or reached at all (e.g. the local engine failed to load)."""


class ParseError(DistilfnError):
    """Model text that could not be read into the task's columns.

    Keeps the task name and the raw text so nothing is lost.
    """

    def __init__(self, message: str, *, task: str | None = None, raw: str | None = None):
        super().__init__(message)
        self.task = task
        self.raw = raw


class RunAbortedError(DistilfnError, RuntimeError):
    """The run stopped before the end (authentication failure, error-rate threshold)."""


class BudgetExceededError(RunAbortedError):
    """The projected cost of the requests sent passed the run's ``max_cost``."""


class OutputError(DistilfnError):
    """A streamed output cannot be written or resumed as asked (the message says how to go on)."""


class OutputLockedError(OutputError):
    """Another run holds the output's lock: two writers never share one output."""


class ResumeRefusedError(OutputError):
    """The output was started by another plan or another input, is damaged, or was not
    written by distilfn; ``restart=True`` (``--restart``) starts over."""


class RunInterrupted(KeyboardInterrupt):
    """A signal (SIGTERM) stopped the run; the rows that finished were saved."""
