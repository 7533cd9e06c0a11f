"""The one error hierarchy of toolcall, rooted in ToolcallError."""
from __future__ import annotations

from collections.abc import Sequence


class ToolcallError(Exception):
    """Root of every error toolcall raises on purpose."""


class ConfigError(ToolcallError, ValueError):
    """A setting or argument has a value that is not allowed."""


class ChatTemplateError(ConfigError):
    """The model's chat template refused the messages (a template that raises on, say, two user turns in a row)."""


class UnknownNameError(ToolcallError, KeyError):
    """A name (tool, dialect, backend) was looked up that no registry holds."""

    def __init__(self, kind: str, name: str, valid: Sequence[str], suggestion: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.valid = tuple(valid)
        self.suggestion = suggestion
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return str(self.args[0])


class DuplicateNameError(ToolcallError, ValueError):
    """A name was registered twice without replace=True; `owner` is the name of what holds it already."""

    def __init__(self, message: str, *, owner: str | None = None) -> None:
        super().__init__(message)
        self.owner = owner


class DialectSyntaxError(ToolcallError, ValueError):
    """Text that looks like a call but does not follow the dialect's grammar."""

    def __init__(self, message: str, *, line: int, column: int, pos: int,
                 expected: Sequence[str] = (), context: str = "") -> None:
        self.message = message
        self.line = line
        self.column = column
        self.pos = pos
        self.expected = tuple(expected)
        self.context = context
        want = f"; expected one of: {', '.join(self.expected)}" if self.expected else ""
        super().__init__(f"line {line}, column {column}: {message}{want}")


class ToolError(ToolcallError):
    """A tool could not produce a result."""


class ToolArgumentError(ToolError, ValueError):
    """Arguments from the model could not be bound or coerced to the tool's signature."""


class ToolTimeoutError(ToolError, TimeoutError):
    """A tool did not finish within its time limit."""


class ToolRaised(ToolError):
    """A tool's function raised an exception of its own: its type's name and its message, written as text where it
    was raised (an exception's __str__ is the tool's code, which may be slow or raise)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(f"{kind}: {text}")
        self.kind, self.text = kind, text


class BackendError(ToolcallError):
    """A model backend failed to load or to generate."""


class MissingDependencyError(ToolcallError, ImportError):
    """An optional dependency is not installed; the message says what to install."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = "") -> None:
        hint = f"pip install 'toolcall[{extra}]'" if extra else f"pip install {package}"
        why = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{why}; install it with: {hint}")
        self.package = package
