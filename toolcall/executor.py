"""Running a tool function under a time limit: in a thread (I/O tools) or in a reusable worker process that is killed on timeout."""
from __future__ import annotations

import atexit
import contextvars
import dataclasses
import enum
import functools
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import ConfigError, ToolcallError, ToolError, ToolRaised, ToolTimeoutError
from .schema import object_call, python_arguments, tool_signature
from .tool_loop import GIVEN_UP, LOOP_HELD, run_awaitable, running_loop, waiting_on_a_call

# Address-space cap for worker processes: a hostile expression that allocates without bound dies with
# MemoryError instead of swapping the machine. Override with TOOLCALL_WORKER_MEMORY_MB (0 = no cap).
DEFAULT_WORKER_MEMORY_MB = 4096
# How long a fresh worker may take to start (interpreter + preloaded modules such as sympy).
START_TIMEOUT = 60.0
#: Set by a caller that can give up on a call (an MCP client's notifications/cancelled): an isolated call stops
#: waiting within CANCEL_POLL seconds and its worker process is killed, so the worker is free for other calls at once
#: rather than busy until the call's time limit.
CANCELLED: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("toolcall_call_cancelled",
                                                                                   default=None)
CANCEL_POLL = 0.25


#: Set once the process gives up on every call still running (Ctrl-C in a command): a thread waiting on a tool stops
#: waiting, so exiting does not wait out each running call's time limit (a thread pool's workers, which wait on the
#: tools, are joined when the interpreter exits: data-gen took 30 s to end after Ctrl-C).
_ABANDONED = threading.Event()


def abandon_calls() -> None:
    """Give up on every call running now or later in this process (the process is ending)."""
    _ABANDONED.set()


def _cancelled() -> bool:
    event = CANCELLED.get()
    return _ABANDONED.is_set() or (event is not None and event.is_set())


class _Cancelled(Exception):
    """The caller gave up on the call while a worker ran it."""


#: The longest time limit a call may have: a day (a thread's wait takes no more than about 292 years, and NaN none).
MAX_TIMEOUT = 86_400.0


def check_timeout(value: Any, what: str) -> float:
    """`value` as a call's time limit in seconds, or a ConfigError: a number more than 0 and at most MAX_TIMEOUT.
    0, a negative number, NaN and infinity used to mean no limit or fail every call."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what}: a time limit is a number of seconds, not {type(value).__name__}")
    if not 0 < value <= MAX_TIMEOUT:
        raise ConfigError(f"{what}: a time limit must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {value}")
    return float(value)


def invoke(func: Callable[..., Any], kwargs: Mapping[str, Any], label: str = "") -> str:
    """func(**kwargs) as text: the arguments bound to the tool's schema made the Python types its hints name
    (`toolcall.schema.python_arguments`), its positional-only parameters given by position, an awaitable it returns
    (an `async def` tool) run to its end on the event loop async tools share (`toolcall.tool_loop`). Done in the thread or
    process that runs the call, so building a record argument (the tool's own code) and turning the value into text
    count against the time limit too."""
    named = python_arguments(func, kwargs, tool=label or getattr(func, "__name__", "tool"))
    positional = [named.pop(n) for n in _positional_only(func) if n in named]
    value = func(*positional, **named)
    if inspect.isawaitable(value):
        value = run_awaitable(value)
    return result_text(value)


def _positional_only(func: Callable[..., Any]) -> list[str]:
    try:
        parameters = tool_signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: everything goes by name
        return []
    return [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_ONLY]


def error_text(err: BaseException) -> str:
    """str(err), or what can be said of it when its own __str__ fails (SystemExit raised there too: the exception
    type is the tool's code)."""
    try:
        return str.__str__(str(err))
    except BaseException as inner:  # noqa: BLE001
        return f"(its message could not be written: {type(inner).__name__})"


def result_text(value: Any) -> str:
    """A tool's return value as the text spliced into the model's output: a str as it is, None as nothing, data
    (dicts, lists, tuples, sets, dataclasses, pydantic models, NumPy arrays and numbers) as JSON, an Enum as its
    value, UTF-8 bytes as their text, anything else as str() writes it (a pandas table, with its index). A generator
    is refused: its repr is no result."""
    if isinstance(value, str):
        return str.__str__(value)  # a plain copy of a str subclass, whose own __str__ could take any time later
    if value is None:
        return ""
    if inspect.isgenerator(value) or inspect.isasyncgen(value):
        raise ToolError(f"returned a {type(value).__name__}, which is not a result: return a list or a str")
    if isinstance(value, enum.Enum):
        return result_text(value.value)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(bytes(value)):,} bytes that are not UTF-8 text)"
    data = _as_data(value)
    if data is _NOT_DATA:
        return str(value)
    if isinstance(data, str | bool | int | float):  # a NumPy number or string, as Python writes it (True, not true)
        return str(data)
    try:
        return json.dumps(data, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError, RecursionError):
        return str(value)


#: _as_data's answer for a value that is not data: it is written by str().
_NOT_DATA: Any = object()
#: The most elements of a NumPy array written as a JSON list; a larger one is written as NumPy summarises it (the
#: text would be cut to the result limit anyway, after a list of every element was built: 2 M elements took 200 MB).
MAX_ARRAY_ITEMS = 10_000


def _as_data(value: Any) -> Any:
    """`value` as JSON-ready data: containers as they are, a dataclass instance or a pydantic model as its fields,
    a set as a sorted list, a NumPy array or number as Python's; _NOT_DATA for anything else, or when the value's
    own conversion fails (it is then written by str())."""
    if isinstance(value, dict | list | tuple):
        return value
    try:
        if isinstance(value, set | frozenset):
            items = list(value)
            try:
                return sorted(items)
            except TypeError:
                return items
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        dump = getattr(type(value), "model_dump", None)
        if callable(dump) and hasattr(type(value), "model_fields"):
            return value.model_dump(mode="json")
        return _numpy_data(value)
    except Exception:  # noqa: BLE001 - the value's own conversion failing: its str() is still a result
        return _NOT_DATA


def _numpy_data(value: Any) -> Any:
    """A NumPy array or number as Python data, by its type (not by a `tolist` any object may have): numbers and
    strings as they are; a float32 as it prints (0.1, not 0.10000000149011612); dates, times and objects, or an
    array past MAX_ARRAY_ITEMS, as NumPy writes them (a str)."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return _NOT_DATA
    if isinstance(value, numpy.generic):
        kind = value.dtype.kind
        if kind in "biu" or value.dtype == numpy.float64 or kind == "U":
            return value.item()
        return str(value)
    if isinstance(value, numpy.ndarray):
        if value.size > MAX_ARRAY_ITEMS or value.dtype.kind not in "biufU":
            return str(value)
        if value.dtype.kind == "f" and value.dtype != numpy.float64:
            return _floats(value.astype(str).tolist())  # each as it prints, then read as a float
        return value.tolist()
    return _NOT_DATA


def _floats(items: Any) -> Any:
    return [_floats(item) for item in items] if isinstance(items, list) else float(items)


def _json_default(value: Any) -> Any:
    """What json.dumps writes for a value it has no form for: data as data, an Enum as its value, bytes as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    data = _as_data(value)
    return str(value) if data is _NOT_DATA or data is value else data


# ---------------------------------------------------------------------------------------------- threads

#: Calls of one tool that may go on running after their time limit (a thread cannot be killed): past this many, the
#: tool's next calls are refused at once until one of them ends, so a tool that hangs (a request with no timeout of
#: its own) cannot pile up threads without bound while a model or a server's clients keep calling it.
MAX_OVERDUE_CALLS = 8
# By the tool's name and its function: another registry's tool of the same name is another tool (eight timeouts of
# one `lookup` refused a different, fast `lookup` elsewhere in the process).
_overdue: dict[tuple[str, int], list[threading.Thread]] = {}
_overdue_lock = threading.Lock()


def overdue_calls(label: str, func: Callable[..., Any] | None = None) -> int:
    """How many timed-out calls of tool `label` (of its function `func`; None: of any function) are still running."""
    with _overdue_lock:
        count = 0
        for key in [k for k in _overdue if k[0] == label and (func is None or k[1] == id(func))]:
            alive = [t for t in _overdue[key] if t.is_alive()]
            if alive:
                _overdue[key] = alive
            else:
                del _overdue[key]
            count += len(alive)
        return count


def run_in_thread(func: Callable[..., Any], kwargs: Mapping[str, Any], timeout: float | None, label: str) -> str:
    """Call func(**kwargs) in a daemon thread and wait at most `timeout` seconds; its value as text (see `invoke`).

    A thread cannot be killed: on timeout it is abandoned and finishes (or blocks) in the background,
    which is acceptable for I/O-bound tools only; CPU-bound tools use the worker process instead. While
    MAX_OVERDUE_CALLS of the tool's calls are still running so, the next is refused without starting.
    """
    return str(call_in_thread(lambda: invoke(func, kwargs, label), timeout, label, func))


def call_in_thread(call: Callable[[], Any], timeout: float | None, label: str, owner: Callable[..., Any]) -> Any:
    """call() in a daemon thread, in a copy of the caller's context, waited on at most `timeout` seconds (None: no
    limit); its value as it is. `owner`, the function `call` runs, is what overdue calls are counted by."""
    if _ABANDONED.is_set():
        raise ToolError(f"{label}: not run: the process is ending")
    running = overdue_calls(label, owner)
    if running >= MAX_OVERDUE_CALLS:
        raise ToolError(f"{label}: not run: {running} earlier calls of it are still running past their time limit; "
                        "it runs again once one of them ends")
    box: dict[str, Any] = {}
    # The tool runs in a copy of the caller's context, so it sees what the caller set (toolcall.tool_type.text_context).
    context = contextvars.copy_context()
    given_up = threading.Event()  # set once this caller stops waiting: an async tool's task is then cancelled
    context.run(GIVEN_UP.set, given_up)
    held = running_loop()
    if held is not None:  # called synchronously from a coroutine, whose loop waits with it
        context.run(LOOP_HELD.set, held)

    def target() -> None:
        # A failure's message is written here, within the time limit: the tool's exception may write itself slowly,
        # or raise (SystemExit too) when written, and the caller only reads the text.
        try:
            box["value"] = context.run(call)
        except ToolTimeoutError as err:
            box["error"] = ToolTimeoutError(error_text(err))
        except ToolcallError as err:
            box["error"] = ToolError(error_text(err))
        except BaseException as err:  # SystemExit, KeyboardInterrupt, GeneratorExit raised by the tool: its failure,
            # not a signal to the caller (a real Ctrl-C reaches the main thread, not this one)
            box["error"] = ToolRaised(type(err).__name__, error_text(err))

    thread = threading.Thread(target=target, name=f"toolcall-{label}", daemon=True)
    thread.start()
    try:
        with waiting_on_a_call():
            cancelled = _wait(thread, timeout)
    except BaseException:  # Ctrl-C while waiting (a chat goes on after it): the call is given up, not left running
        _give_up(thread, given_up, label, owner)
        raise
    if thread.is_alive():
        _give_up(thread, given_up, label, owner)
        if cancelled:
            raise ToolError(f"{label}: the call was cancelled")
        raise ToolTimeoutError(f"{label}: timed out after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _give_up(thread: threading.Thread, given_up: threading.Event, label: str, owner: Callable[..., Any]) -> None:
    """Stop waiting on a call's thread: an async tool's task is cancelled, and the thread counts as overdue while it
    runs on."""
    given_up.set()
    with _overdue_lock:
        # The thread holds `owner`, so its id stays this function's while the thread runs.
        _overdue.setdefault((label, id(owner)), []).append(thread)


def _wait(thread: threading.Thread, timeout: float | None) -> bool:
    """Wait for `thread` at most `timeout` seconds (None: no limit), looking every CANCEL_POLL seconds whether the
    caller gave up on the call (CANCELLED, or the process abandoning its calls); True when it did."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        if _cancelled():
            return True
        thread.join(CANCEL_POLL if left is None else min(left, CANCEL_POLL))
    return False


# ---------------------------------------------------------------------------------------------- worker processes

#: How a worker process finds a tool function: (module, qualified name, the module's file or None).
FunctionRef = tuple[str, str, "str | None"]


def function_ref(func: Callable[..., Any]) -> FunctionRef:
    """(module, qualified name, file) by which a worker process imports `func`; ConfigError if it cannot. The file
    is for a module `--tools-from` loaded from a path under a name of its own (`my-tools.py`, or a `calendar.py`
    that the standard library's would shadow), which no import statement finds."""
    if (isinstance(func, functools.partial) or (inspect.ismethod(func) and not inspect.isclass(func.__self__))
            or object_call(func) is not None):
        # A partial, a method bound to an object (a decorated one too) or a callable object carries values of its
        # own, which a worker importing a name would not have (a classmethod's class it finds by that name).
        raise ConfigError(f"{type(func).__name__} object: a tool run in an isolated process must be a module-level "
                          "function in an importable module (it is imported there by name); wrap this one in such a "
                          "function")
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if not module or module == "__main__" or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(f"{qualname or func!r}: a tool run in an isolated process must be a module-level function "
                          f"in an importable module (found module {module!r}, name {qualname!r})")
    source = getattr(sys.modules.get(module), "__file__", None)
    return module, qualname, source if isinstance(source, str) else None


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!I", len(data)) + data)
    stream.flush()


def _read_exactly(stream: Any, size: int) -> bytes:
    """`size` bytes; an unbuffered pipe may hand them over in pieces."""
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("worker channel closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(stream: Any) -> Any:
    return pickle.loads(_recv_frame(stream))


#: The largest reply a worker may send (a result, an error): one of 300 MB was read whole, past its call's limit, into
#: twice its size of the caller's memory, to be cut to the registry's 32,768 characters.
MAX_REPLY_BYTES = 64 * 1024 * 1024


class _Oversized(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _recv_frame(stream: Any) -> bytes:
    (size,) = struct.unpack("!I", _read_exactly(stream, 4))
    return _read_exactly(stream, size)


def _resolve(ref: FunctionRef) -> Callable[..., Any]:
    name, qualname, source = ref
    try:
        obj: Any = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if source is None or err.name != name:
            raise
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise
        obj = importlib.util.module_from_spec(spec)
        sys.modules[name] = obj
        spec.loader.exec_module(obj)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "func", obj)  # a module-level name may hold a Tool wrapping the function


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this worker when its parent dies, so no orphan keeps computing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main() -> None:
    """The worker's loop (see _serve); a parent gone mid-call (killed: its end of the pipes closed) ends it quietly,
    where it printed a BrokenPipeError traceback into the terminal the parent had left."""
    try:
        _serve()
    except (BrokenPipeError, ConnectionResetError, EOFError):
        os._exit(0)  # not a normal exit: flushing the closed result channel at exit would raise again


def _serve() -> None:
    """Read (ref, kwargs), call, write ("ok", text) or ("error", type, message). Stdlib only at start."""
    channel_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # tool prints go to stderr, never into the result channel
    channel_in = sys.stdin.buffer
    _die_with_parent()
    import signal

    # Ctrl-C in a chat reaches the whole process group; the parent decides what stops, the worker just waits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init = _recv(channel_in)
    sys.path[:] = init["path"]
    if init.get("memory_mb"):
        try:
            import resource

            limit = int(init["memory_mb"]) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
    for name in init.get("preload", ()):
        try:
            importlib.import_module(name)
        except Exception:  # a bad preload only costs time later, when the call imports it again and reports
            pass
    _send(channel_out, ("ready", os.getpid()))
    cache: dict[FunctionRef, Callable[..., Any]] = {}
    while True:
        try:
            frame = _recv_frame(channel_in)
        except EOFError:
            return
        try:
            # Unpickled here, not as it is read: a request that cannot be (a class its module cannot import in the
            # worker) is that call's error, where it was the worker's death for every call.
            ref, kwargs, label = pickle.loads(frame)
            func = cache.get(ref)
            if func is None:
                # Importing the tool's module is start-up, not the call: say so, and the caller starts its clock now.
                func = cache[ref] = _resolve(ref)
                _send(channel_out, ("imported",))
            reply: tuple[Any, ...] = ("ok", invoke(func, kwargs, label))
        except BaseException as err:  # every failure goes back to the caller as data
            reply = ("error", type(err).__name__, error_text(err), isinstance(err, ToolError))
        _send(channel_out, reply)


#: What TOOLCALL_WORKER_MEMORY_MB may be besides 0: under ~256 MB a worker cannot import sympy (a bare MemoryError
#: for every call), and past a terabyte setrlimit failed in the worker (a traceback, then "killed by signal 9").
WORKER_MEMORY_RANGE_MB = (256, 1 << 20)


def worker_memory_mb() -> int:
    """The worker's address-space cap in MB from TOOLCALL_WORKER_MEMORY_MB (0: none), or a ConfigError naming it."""
    raw = os.environ.get("TOOLCALL_WORKER_MEMORY_MB", "").strip()
    if not raw:
        return DEFAULT_WORKER_MEMORY_MB
    low, high = WORKER_MEMORY_RANGE_MB
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value != 0 and not low <= value <= high:
        raise ConfigError(f"TOOLCALL_WORKER_MEMORY_MB={raw[:40]!r}: give a whole number of megabytes from {low} to "
                          f"{high:,}, or 0 for no cap")
    return value


class Worker:
    """One worker process speaking length-prefixed pickles over its stdin/stdout; killed (not asked) on timeout."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        memory = worker_memory_mb()
        # -c with a fresh interpreter: no re-import of the caller's __main__, no fork of a threaded parent.
        self.proc = subprocess.Popen(
            # -P: the folder the command runs in is not put first on the path, so a json.py there is not imported in
            # place of the standard module (and run) by the worker.
            [sys.executable, "-P", "-c", "from toolcall.executor import worker_main; worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, bufsize=0,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        self.ready = False
        self.imported: set[FunctionRef] = set()  # functions this worker has already imported
        _send(self.proc.stdin, {"path": list(sys.path), "memory_mb": memory, "preload": list(preload)})

    def wait_ready(self) -> None:
        if self.ready:
            return
        reply = self._read(START_TIMEOUT)
        if reply is None or reply[0] != "ready":
            self.kill()
            raise ToolError(f"tool worker process did not start within {START_TIMEOUT:g} s")
        self.ready = True

    def _read(self, timeout: float) -> Any:
        """The next message, or None when none arrives within `timeout` seconds; raises ToolError when the caller
        gave up on the call (CANCELLED)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        head = self._take(4, deadline)
        if head is None:
            return None
        (size,) = struct.unpack("!I", head)
        if size > MAX_REPLY_BYTES:
            raise _Oversized(size)
        # The frame is read by the same deadline: a worker that stopped partway through one held its caller for good.
        frame = self._take(size, deadline)
        return None if frame is None else pickle.loads(frame)

    def _take(self, size: int, deadline: float) -> bytes | None:
        """`size` bytes from the worker, or None when they have not all come by `deadline`."""
        import select

        stream = self.proc.stdout
        assert stream is not None  # started with stdout=PIPE
        chunks, left = [], size
        while left:
            wait = deadline - time.monotonic()
            ready, _, _ = select.select([stream], [], [], max(0.0, min(wait, CANCEL_POLL)))
            if ready:
                chunk = stream.read(left)
                if not chunk:
                    raise EOFError("worker channel closed")
                chunks.append(chunk)
                left -= len(chunk)
                continue
            if _cancelled():
                raise _Cancelled
            if wait <= CANCEL_POLL:
                return None
        return b"".join(chunks)

    def call(self, ref: FunctionRef, kwargs: Mapping[str, Any], timeout: float | None, label: str) -> str:
        try:
            self.wait_ready()
            _send(self.proc.stdin, (ref, dict(kwargs), label))
            if ref not in self.imported:
                reply = self._read(START_TIMEOUT)
                if reply is not None and reply[0] == "imported":
                    self.imported.add(ref)
                    reply = self._read(timeout if timeout and timeout > 0 else 1e9)
            else:
                reply = self._read(timeout if timeout and timeout > 0 else 1e9)
        except (EOFError, BrokenPipeError, OSError) as err:
            self.kill()
            raise ToolError(f"{label}: the tool's worker process died ({self._exit_reason()})") from err
        except _Cancelled:
            self.kill()  # the call's result is no longer wanted: its worker is freed now, not at its time limit
            raise ToolError(f"{label}: the call was cancelled") from None
        except _Oversized as err:
            self.kill()
            raise ToolError(f"{label}: the tool's result is {err.size:,} bytes as sent by its worker process, more "
                            f"than the {MAX_REPLY_BYTES:,} a worker may send back") from None
        except BaseException:
            # Interrupted mid-call (Ctrl-C): the worker's late reply would answer the next call, so drop the worker.
            self.kill()
            raise
        if reply is None:
            self.kill()
            raise ToolTimeoutError(f"{label}: timed out after {timeout:g} s")
        if reply[0] == "ok":
            return reply[1]
        _, kind, message, is_tool_error = reply
        if is_tool_error:
            raise ToolError(message)
        raise ToolError(f"{kind}: {message}" if message else kind)

    def _exit_reason(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is None:
                continue
            try:
                stream.close()
            except OSError:
                pass


class WorkerPool:
    """Reused worker processes, at most `max_workers` busy at once; a killed worker is replaced by a fresh one in advance.

    One tool holds at most all workers but one (where there are two or more): two slow Solve calls on two workers made
    every Calculator call wait its whole limit and fail, so one client's calls of a slow tool could stop the others'."""

    def __init__(self, max_workers: int = 2, preload: tuple[str, ...] = ()) -> None:
        self.max_workers = max(1, max_workers)
        # Modules a new worker imports before it is needed: the given ones plus the module of every function this
        # pool has run, so a worker that replaces a killed one is ready for the same tools without naming them here.
        self.preload: dict[str, None] = dict.fromkeys(preload)
        self._idle: list[Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_workers)
        self.per_tool = max(1, self.max_workers - 1)
        # By the tool's name and its function: another registry's tool of the same name is another tool.
        self._tool_slots: dict[tuple[str, FunctionRef], threading.BoundedSemaphore] = {}
        self.started = 0  # workers started so far (tests check reuse)

    def _new(self) -> Worker:
        self.started += 1
        # The kernel's parent-death signal fires when the *thread* that started a worker exits, not the process:
        # a worker started from a short-lived thread (a ThreadPoolExecutor running tool calls) would be killed when
        # that thread ends. So every worker is started from one thread that lives as long as the process.
        return _spawner().submit(Worker, tuple(self.preload)).result()

    def warm(self) -> None:
        """Start one worker now, so the first call does not pay the start-up."""
        with self._lock:
            if not self._idle:
                self._idle.append(self._new())

    def call(self, func: Callable[..., Any], kwargs: Mapping[str, Any], timeout: float | None, label: str) -> str:
        ref = function_ref(func)
        self.preload.setdefault(ref[0], None)
        # The wait for a free worker counts against the call's time limit: four slow calls on two workers each
        # waited their turn and then their whole limit, reporting "timed out after 5 s" after 12.
        bounded = timeout is not None and timeout > 0
        started = time.monotonic()
        with self._lock:
            own = self._tool_slots.setdefault((label, ref), threading.BoundedSemaphore(self.per_tool))
        if not self._acquire(own, timeout if bounded else None):
            if _cancelled():
                raise ToolError(f"{label}: the call was cancelled")
            running = (f"{self.per_tool} calls of it were running, as many as one tool may run on this pool's "
                       f"{self.max_workers} workers" if self.per_tool < self.max_workers
                       else f"{self.max_workers} isolated calls were running")
            raise ToolTimeoutError(f"{label}: timed out after {timeout:g} s (waiting for a free worker: {running})")
        try:
            return self._call_in_slot(ref, kwargs, timeout, label, started)
        finally:
            own.release()

    def _call_in_slot(self, ref: FunctionRef, kwargs: Mapping[str, Any], timeout: float | None, label: str,
                      started: float) -> str:
        bounded = timeout is not None and timeout > 0
        left = None if not bounded or timeout is None else timeout - (time.monotonic() - started)
        if not self._acquire(self._slots, None if left is None else max(0.0, left)):
            if _cancelled():
                raise ToolError(f"{label}: the call was cancelled")
            raise ToolTimeoutError(f"{label}: timed out after {timeout:g} s (waiting for a free worker: "
                                   f"{self.max_workers} isolated calls were running)")
        try:
            left = max(0.001, timeout - (time.monotonic() - started)) if bounded and timeout is not None else timeout
            with self._lock:
                worker = self._idle.pop() if self._idle else self._new()
            try:
                result = worker.call(ref, kwargs, left, label)
            except ToolTimeoutError:
                raise ToolTimeoutError(f"{label}: timed out after {timeout:g} s") from None
            finally:
                with self._lock:
                    if worker.alive():
                        self._idle.append(worker)
                    elif not self._idle:
                        self._idle.append(self._new())  # starts now, so the next call finds it (nearly) ready
            return result
        finally:
            self._slots.release()

    @staticmethod
    def _acquire(slots: threading.BoundedSemaphore, timeout: float | None) -> bool:
        """One of `slots` within `timeout` seconds (None: no limit), given up when the caller cancels the call."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = CANCEL_POLL if deadline is None else min(CANCEL_POLL, deadline - time.monotonic())
            if slots.acquire(timeout=max(0.0, wait)):
                return True
            if _cancelled() or (deadline is not None and time.monotonic() >= deadline):
                return False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()
_SPAWNER: ThreadPoolExecutor | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    """The one long-lived thread that starts worker processes (see WorkerPool._new)."""
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None:
            _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toolcall-worker-spawner")
        return _SPAWNER


def shared_pool() -> WorkerPool:
    """The process-wide pool used by isolated tools."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(max_workers=min(4, os.cpu_count() or 2))
            atexit.register(_POOL.close)
        return _POOL


def run_isolated(func: Callable[..., Any], kwargs: Mapping[str, Any], timeout: float | None, label: str) -> str:
    """Call func(**kwargs) in a worker process; on timeout the process is killed, so the CPU is really freed."""
    return shared_pool().call(func, kwargs, timeout, label)
