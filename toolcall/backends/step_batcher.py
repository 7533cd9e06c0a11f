"""Concurrent decode sessions of one transformers model advanced together: one forward for every session's next token.

A decoding step of a small model on a CPU (or a GPU) costs about the same for one sequence as for sixteen: reading
the weights dominates. So when several sessions decode at once (a server's concurrent replies), their steps are
gathered and run as one batch. Each session keeps its own KV cache between replies and across tool pauses; while it
decodes with others its keys and values live in a row of a shared, left-padded cache, and each step writes into room
at the end of it. A session that sits steps out (a reply paused on a tool, or ended) keeps its row for a while; a
tool's short result rides along in the batched steps a token at a time. A session whose row was given back (it
idled too long, or a newcomer needed the row) takes its keys with it, and returns in a free row: one row's copy,
not the batch's. Every forward runs in the batcher's one thread; prompts that arrive together prefill there as one
forward, between batches.

The shared cache holds its sessions weakly: a session dropped by its caller (a reply that ended, a client gone) frees
its row, and when no session is left, or none has stepped for `release_seconds`, the shared cache is given back whole.
A batched forward that fails (out of memory halfway through the layers) leaves every row as it was before the step,
and each session of the step runs it alone: one session's failure is its own, and the batcher's thread goes on.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import BackendError

if TYPE_CHECKING:
    from .transformers import TransformersBackend, TransformersSession


@dataclass
class _Job:
    session: "TransformersSession"
    ids: list[int]                       # tokens to run; a step of one token may be batched
    work: Callable[[], Any] | None = None  # or other work on the session's cache, run alone (a rollback's crop)
    fed: int = 0                         # of `ids`, how many batched steps have run (a short feed rides token by token)
    done: threading.Event = field(default_factory=threading.Event)
    logits: Any = None
    error: BaseException | None = None

    @property
    def pending(self) -> list[int]:
        """The tokens still to run."""
        return self.ids[self.fed:]


@dataclass
class _Packed:
    """The shared cache of the sessions decoding together. Row i belongs to members[i] (None: a free row); `mask` marks
    the positions of each row that hold its real tokens (0: left padding, or a step the row sat out)."""

    members: list["weakref.ref[TransformersSession] | None"]  # weak: a session its caller dropped frees its row
    cache: Any
    mask: Any  # [rows, positions]
    idle: list[int]  # batched steps each row has sat out in a row

    def member(self, row: int) -> "TransformersSession | None":
        """The session of `row` (None: a free row, or one whose session is gone)."""
        ref = self.members[row]
        return ref() if ref is not None else None

    def live(self) -> list["TransformersSession"]:
        """The sessions that hold rows, in row order."""
        return [s for s in (self.member(r) for r in range(len(self.members))) if s is not None]


class StepBatcher:
    """Runs every forward of a TransformersBackend's sessions, batching the decode steps of concurrent sessions.

    `gather_seconds` bounds how long a step waits for the other decoding sessions to ask for theirs; `max_batch`
    bounds the rows of one forward.
    """

    def __init__(self, backend: "TransformersBackend", max_batch: int = 32, gather_seconds: float = 0.02) -> None:
        self.backend = backend
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self._cv = threading.Condition()
        self._jobs: list[_Job] = []
        self._decoding = 0
        self._packed: _Packed | None = None
        self._thread: threading.Thread | None = None
        self.batches = 0       # forwards that decoded more than one session
        self.batched_rows = 0  # session steps they held
        self.ridden_tokens = 0  # tokens of multi-token feeds (appended results) that rode in those forwards
        self.packs = 0         # times the shared cache was built from every member's own (not a row's copy)
        self.prefill_batches = 0  # forwards that prefilled several sessions together
        self.prefill_rows = 0     # the prefills they held
        self.failed_batches = 0   # batched forwards that raised (each of their sessions then ran its step alone)

    # --- what sessions call (their own threads) ------------------------------------------------
    def enter(self) -> None:
        """A session starts decoding (its next steps will ask to be batched)."""
        with self._cv:
            self._decoding += 1

    def leave(self) -> None:
        """A session stops decoding (its reply ended or paused on a tool): no step of it is to be waited for."""
        with self._cv:
            self._decoding -= 1
            self._cv.notify_all()

    def feed(self, session: "TransformersSession", ids: list[int]) -> Any:
        """Run `ids` through the model after the session's cached tokens; the next-token logits after them."""
        return self._submit(_Job(session, list(ids)))

    def call(self, session: "TransformersSession", work: Callable[[], Any]) -> Any:
        """Run `work` (which uses the session's own cache) in the batcher's thread, with the session unpacked."""
        return self._submit(_Job(session, [], work))

    def _gone(self, _: object) -> None:
        """A packed session was dropped by its caller: wake the batcher, which gives the shared cache back when no
        session is left in it (a weakref callback: any thread, any time)."""
        with self._cv:
            self._cv.notify_all()

    def _submit(self, job: _Job) -> Any:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="toolcall-step-batcher", daemon=True)
                self._thread.start()
            self._jobs.append(job)
            self._cv.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.logits

    # --- the batcher's thread --------------------------------------------------------------
    #: Seconds without any step after which the packed rows are given back to their sessions (the shared cache is
    #: freed): the replies all ended, or wait on tools. A row's keys are held by its session again, as unbatched.
    release_seconds = 0.5

    def _serve(self) -> None:
        while True:
            with self._cv:
                idle = self._wait_for_jobs()
                if not idle:
                    # Give the other decoding sessions a moment to ask for their step too.
                    deadline = time.monotonic() + self.gather_seconds
                    while len(self._jobs) < min(self._decoding, self.max_batch):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cv.wait(left)
                    jobs, self._jobs = self._jobs[:self.max_batch], self._jobs[self.max_batch:]
            if idle:
                self._unpack_all()
                continue
            try:
                self._serve_round(jobs)
            except BaseException as err:  # noqa: BLE001  # the thread must outlive any round: every session waits on it
                self._unpack_all()  # the pack's state is not known: each session gets its own cache back where it can
                _fail(jobs, err)
            del jobs  # nor does this thread keep the round's sessions alive while it waits for the next

    def _wait_for_jobs(self) -> bool:
        """Wait (holding the condition) for jobs; True instead when the shared cache is to be given back first: no
        live session is left in it, or no job came for `release_seconds`."""
        while not self._jobs:
            packed = self._packed
            if packed is None:
                self._cv.wait()
            elif not packed.live() or (not self._cv.wait(self.release_seconds) and not self._jobs):
                return True
        return False

    def _serve_round(self, jobs: list[_Job]) -> None:
        """Run the jobs gathered for one round: work and long feeds alone (or prefills together), then the steps."""
        steps: list[_Job] = []
        alone: list[_Job] = []
        for job in jobs:
            (steps if self._rides(job) else alone).append(job)
        if len(steps) == 1:
            alone, steps = alone + steps, []  # nothing to ride along with: one forward over its tokens is cheaper
        feeds = [job for job in alone if job.work is None and len(job.pending) > 1]
        if len(feeds) > 1 and self.prefill_together:
            alone = [job for job in alone if job not in feeds]
            self._prefill_together(feeds)
        for job in alone:
            self._run(job, lambda j=job: self._forward_alone(j))
        if steps:
            try:
                with _torch().inference_mode():  # the packed cache's tensors are written in place
                    logits = self._forward_together(steps)
            except Exception:  # noqa: BLE001  # every row is as before the step: each session runs it alone
                self.failed_batches += 1
                self._unpack_all()
                for job in steps:
                    self._run(job, lambda j=job: self._forward_alone(j))
            else:
                unfinished = []
                for job, row in zip(steps, logits):
                    if job.fed < len(job.ids):
                        unfinished.append(job)  # its next token rides in the next batch, before any other work
                    else:
                        job.logits = row
                        job.done.set()
                if unfinished:
                    with self._cv:
                        self._jobs[:0] = unfinished

    @staticmethod
    def _run(job: _Job, work: Any) -> None:
        try:
            job.logits = work()
        except BaseException as err:  # noqa: BLE001
            job.error = err
        job.done.set()

    #: A feed of at most this many tokens (an appended tool result, a rollback's re-encoded characters) rides along in
    #: the batched steps, a token per step, rather than run alone while every other reply waits: alone, a few tokens
    #: after a long context cost about as much as a whole batched step; riding, each adds one row to a step.
    ride_tokens = 8

    def _rides(self, job: _Job) -> bool:
        """Whether the job can be a row of a batched step (else it runs alone)."""
        return (job.work is None and bool(job.session.token_ids)
                and 1 <= len(job.pending) <= max(1, self.ride_tokens))

    def _forward_alone(self, job: _Job) -> Any:
        with _torch().inference_mode():
            self._unpack(job.session)
        if job.work is None:
            _check_whole(job.session)
        return job.work() if job.work is not None else job.session._forward(job.pending)

    prefill_together = True  # prefills that arrive together run as one forward (False: each alone)
    #: Rows x padded length of one batched prefill at most: its attention scores grow with rows x length x context,
    #: so long prompts (hostile ones too) arriving together prefill alone, chunk by chunk, as they would unbatched.
    prefill_tokens = 1024

    def _prefill_together(self, jobs: list[_Job]) -> None:
        """Several sessions' prefills (prompts arriving together, each after the prefix it shares with recent ones) as
        one forward: a weight read shared by every row, where prefills of a few dozen tokens each run alone leave the
        matrix units half idle. Queries are left-padded to the longest. A session whose cache is empty after the prefix
        cache (nothing of its prompt seen before) runs alone first: its padding would see no key at all, and the
        prompts after it may then start from its prefix."""
        torch = _torch()
        runs: list[tuple[_Job, list[int]]] = []
        try:
            with torch.inference_mode():
                for job in jobs:
                    self._unpack(job.session)
                    run = job.session._start_from_prefix(job.pending)
                    if not _cached(job.session):
                        # Nothing of it seen before: alone now, so that the prompts after it can start from its prefix.
                        self._run(job, lambda j=job, r=run: _extend_whole(j.session, r, j.pending))
                        continue
                    runs.append((job, run))
                batch = _within(self.prefill_tokens, runs)
                try:
                    rows = self._forward_prefills(batch) if len(batch) > 1 else []
                except Exception:  # noqa: BLE001  # each session has its own cache back, as before: each runs alone
                    self.failed_batches += 1
                    rows = []
                if rows:
                    for (job, _), row in zip(batch, rows):
                        job.session._store_prefix(job.pending)
                        job.logits = row
                        job.done.set()
        except BaseException as err:  # noqa: BLE001  # handed to the waiting sessions, which raise them
            for job in jobs:
                if not job.done.is_set():
                    job.error = err
                    job.done.set()
            return
        for job, run in runs:  # those left out of the batch: their prefix (if any) is in their cache, `run` follows
            if not job.done.is_set():
                self._run(job, lambda j=job, r=run: _extend_whole(j.session, r, j.pending))

    def _forward_prefills(self, batch: list[tuple[_Job, list[int]]]) -> list[Any]:
        """One forward over the sessions' caches, packed apart from the decoding sessions' pack, each followed by its
        `run` left-padded to the longest; each session's own cache (its real positions) back; the logits after each."""
        torch = _torch()
        device = self.backend.device
        sessions = [job.session for job, _ in batch]
        cached = [_cached(s) for s in sessions]
        width = max(len(run) for _, run in batch)
        packed = self._pack(sessions)
        before = packed.mask.shape[1]
        try:
            real = torch.zeros((len(sessions), width), dtype=packed.mask.dtype, device=device)
            tokens = torch.zeros((len(sessions), width), dtype=torch.long, device=device)
            positions = torch.zeros((len(sessions), width), dtype=torch.long, device=device)
            for row, ((_, run), n) in enumerate(zip(batch, cached)):
                real[row, width - len(run):] = 1
                tokens[row, width - len(run):] = torch.tensor(run, dtype=torch.long, device=device)
                positions[row, :] = n  # the padding's positions: any, no real token sees it
                positions[row, width - len(run):] = torch.arange(n, n + len(run), device=device)
            packed.mask = torch.cat([packed.mask, real], dim=1)
            out = self.backend.model(input_ids=tokens, attention_mask=packed.mask, position_ids=positions,
                                     use_cache=True, logits_to_keep=1, **{self.backend.cache_kwarg: packed.cache})
        except BaseException:
            _cut(packed, before)  # the layers that ran, back to where they were: each session's cache as it came
            self._give_back(packed)
            raise
        self._give_back(packed)
        self.prefill_batches += 1
        self.prefill_rows += len(sessions)
        return [out.logits[row, -1].float() for row in range(len(sessions))]

    def _forward_together(self, steps: list[_Job]) -> list[Any]:
        """One forward for every stepping session. Rows of packed sessions that do not step this time ride along on a
        masked pad (their caches grow by a position no later token sees), so joining and leaving cost one row's copy,
        not the whole batch's."""
        torch = _torch()
        sessions = [j.session for j in steps]
        if self._packed is not None:
            # A row that has sat out many steps (its reply ended, or waits on a slow tool) gives its keys back.
            for r, member in enumerate(self._packed.members):
                if member is not None and self._packed.idle[r] > self.idle_steps:
                    self._release_row(self._packed, r)
        packed = self._place(sessions)
        rows = len(packed.members)
        row_of = {id(s): r for r, s in enumerate(map(packed.member, range(rows))) if s is not None}
        fed = [job.fed for job in steps]
        before = packed.mask.shape[1]
        try:
            stepping = torch.zeros((rows, 1), dtype=packed.mask.dtype, device=packed.mask.device)
            tokens = torch.zeros((rows, 1), dtype=torch.long, device=self.backend.device)
            positions = torch.zeros((rows, 1), dtype=torch.long, device=self.backend.device)
            for job in steps:
                r = row_of[id(job.session)]
                stepping[r, 0] = 1
                tokens[r, 0] = job.ids[job.fed]
                positions[r, 0] = len(job.session.token_ids) + job.fed  # the session counts its tokens at the job's end
                job.fed += 1
            packed.mask = torch.cat([packed.mask, stepping], dim=1)
            out = self.backend.model(input_ids=tokens, attention_mask=packed.mask, position_ids=positions,
                                     use_cache=True, logits_to_keep=1, **{self.backend.cache_kwarg: packed.cache})
        except BaseException:
            # Stopped halfway (out of memory in a later layer): the layers that ran give their new position back, so
            # every row (those that sat this step out too) holds what it held before, and no step counts as run.
            _cut(packed, before)
            for job, n in zip(steps, fed):
                job.fed = n
            raise
        for r in range(rows):
            packed.idle[r] = 0 if stepping[r, 0] else packed.idle[r] + 1
        self.batches += 1
        self.batched_rows += len(steps)
        self.ridden_tokens += sum(len(job.ids) > 1 for job in steps)
        return [out.logits[row_of[id(s)], -1].float() for s in sessions]

    idle_steps = 16  # batched steps a packed session may sit out before its row is given back

    def _place(self, sessions: list["TransformersSession"]) -> _Packed:
        """The packed cache with a row for each of `sessions`: a session not in it takes a free row (its keys copied
        in, right-aligned), or the row of a session not stepping now; the pack is rebuilt when there are not enough
        such rows, a cache is longer than the rows, or the rows have grown to twice what their sessions hold."""
        packed = self._packed
        if packed is not None:
            length = packed.mask.shape[1]
            needed = [s for s in sessions if _row(packed, s) is None]
            # Rows of sessions that sit this step out (a reply that ended or waits on a tool), the longest idle first:
            # given back to make room, one row's copy each, rather than re-packing every row.
            stepping = {id(s) for s in sessions}
            members = [packed.member(r) for r in range(len(packed.members))]
            free = [r for r, m in enumerate(members) if m is None]  # a row whose session is gone is free
            spare = sorted((r for r, m in enumerate(members) if m is not None and id(m) not in stepping),
                           key=lambda r: -packed.idle[r])
            live = [len(m.token_ids) for m in members if m is not None] + [len(s.token_ids) for s in needed]
            if (len(needed) <= len(free) + len(spare) and all(_cached(s) <= length for s in needed)
                    and length <= 2 * max(live) + 64):
                for r in spare[:max(0, len(needed) - len(free))]:
                    self._release_row(packed, r)
                    free.append(r)
                for s, r in zip(needed, free):
                    self._fill_row(packed, r, s)
                return packed
        kept = packed.live() if packed is not None else []
        kept += [s for s in sessions if not any(m is s for m in kept)]
        self._unpack_all()
        self._packed = self._pack(kept)
        self.packs += 1
        return self._packed

    def _pack(self, sessions: list["TransformersSession"]) -> _Packed:
        """One left-padded cache holding every session's keys and values (each session's own cache is emptied)."""
        from transformers import DynamicCache

        torch = _torch()
        # The cache's own length: a packed session that is not stepping may be between its step and counting it.
        lengths = [_cached(s) for s in sessions]
        longest = max(lengths)
        packed = DynamicCache(config=self.backend.model.config)
        roomy = _roomy_layers(packed)
        for layer in range(len(sessions[0]._cache.layers)):
            first: Any = sessions[0]._cache.layers[layer]
            # Room for the steps to come, so that each step writes its keys in place rather than copying the cache.
            shape = (len(sessions), first.keys.shape[1], longest + (_room(longest) if roomy else 0), first.keys.shape[3])
            keys, values = first.keys.new_zeros(shape), first.values.new_zeros(shape)
            for row, (s, n) in enumerate(zip(sessions, lengths)):
                own: Any = s._cache.layers[layer]
                keys[row, :, longest - n:longest] = own.keys[0]
                values[row, :, longest - n:longest] = own.values[0]
            if roomy:
                held: Any = packed.layers[layer]
                held.hold(keys, values, longest)
            else:
                packed.update(keys, values, layer)
        mask = torch.zeros((len(sessions), longest), dtype=torch.long, device=self.backend.device)
        for row, n in enumerate(lengths):
            mask[row, longest - n:] = 1
        for s in sessions:
            s._cache = None  # its keys and values are in the packed cache until it is unpacked
        return _Packed([weakref.ref(s, self._gone) for s in sessions], packed, mask, [0] * len(sessions))

    def _fill_row(self, packed: _Packed, row: int, session: "TransformersSession") -> None:
        """Copy a session's own keys and values into a free row, right-aligned."""
        n, length = _cached(session), packed.mask.shape[1]
        for shared, own in zip(packed.cache.layers, session._cache.layers):
            shared.keys[row].zero_()
            shared.values[row].zero_()
            shared.keys[row, :, length - n:] = own.keys[0]
            shared.values[row, :, length - n:] = own.values[0]
        packed.mask[row] = 0
        packed.mask[row, length - n:] = 1
        packed.members[row], packed.idle[row] = weakref.ref(session, self._gone), 0
        session._cache = None

    def _release_row(self, packed: _Packed, row: int) -> None:
        """Give a packed session its own keys and values back (its real positions only); its row is free again (a
        session that is gone gets nothing)."""
        from transformers import DynamicCache

        session = packed.member(row)
        if session is None:
            packed.members[row] = None
            return
        real = packed.mask[row].bool()
        own = DynamicCache(config=self.backend.model.config)
        for layer, shared in enumerate(packed.cache.layers):
            own.update(shared.keys[row:row + 1, :, real].clone(), shared.values[row:row + 1, :, real].clone(), layer)
        session._cache = own
        packed.members[row] = None

    def _unpack(self, session: "TransformersSession") -> None:
        """Give a packed session its own cache back before it runs alone (a prefill, a rollback)."""
        packed = self._packed
        row = _row(packed, session) if packed is not None else None
        if packed is not None and row is not None:
            self._release_row(packed, row)

    def _unpack_all(self) -> None:
        """Every packed session has its own cache back; the shared cache is freed."""
        packed, self._packed = self._packed, None
        if packed is not None:
            self._give_back(packed)

    def _give_back(self, packed: _Packed) -> None:
        """Every row's session has its own cache back."""
        for row in range(len(packed.members)):
            try:
                self._release_row(packed, row)
            except BaseException:  # noqa: BLE001  # out of memory for its copy: that session's keys are lost
                _lose(packed.member(row))


def _fail(jobs: list[_Job], err: BaseException) -> None:
    """Hand `err` to the jobs still waiting (in a frame of its own: no loop variable keeps a session alive after)."""
    for job in jobs:
        if not job.done.is_set():
            job.error = err
            job.done.set()


def _check_whole(session: "TransformersSession") -> None:
    """Raise for a session whose keys were lost giving a failed batch's rows back (`_lose`): its step would run the
    pending tokens with no context at all (position 0, an empty cache) and sample from that, without a word."""
    if session._torn:
        raise BackendError("this session's cache was lost when a batched model step failed (out of memory giving its "
                           "keys back); start a new session")


def _extend_whole(session: "TransformersSession", run: list[int], pending: list[int]) -> Any:
    """The session's prefill of `run` alone, once its cache is known to be whole (`_check_whole`)."""
    _check_whole(session)
    return session._extend(run, pending)


def _lose(session: "TransformersSession | None") -> None:
    """A session whose keys and values were lost: its next step raises, as after a forward stopped halfway."""
    if session is not None:
        session._torn = True


def _cut(packed: _Packed, length: int) -> None:
    """Every layer of the pack, and its mask, back to their first `length` positions (a forward that failed wrote
    past them in the layers it ran)."""
    packed.mask = packed.mask[:, :length]
    for layer in packed.cache.layers:
        if layer.keys is not None and layer.keys.dim() == 4 and layer.keys.shape[2] > length:
            layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]


def _within(budget: int, batch: list[tuple[_Job, list[int]]]) -> list[tuple[_Job, list[int]]]:
    """The first prefills of `batch` whose rows x longest run stay within `budget` tokens."""
    taken: list[tuple[_Job, list[int]]] = []
    width = 0
    for job, run in batch:
        width = max(width, len(run))
        if (len(taken) + 1) * width > budget:
            break
        taken.append((job, run))
    return taken


def _room(length: int) -> int:
    """Spare positions to allocate past `length`: a quarter more, at least 64 (so growing costs amortised O(1))."""
    return max(64, length // 4)


def _roomy_layers(cache: Any) -> bool:
    """Swap a DynamicCache's plain layers for `_RoomyLayer`s; False (left as it is) when any layer is of another kind
    (sliding windows), which keeps its own update."""
    from transformers.cache_utils import DynamicLayer

    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return False
    cache.layers = [_roomy_layer_class()() for _ in cache.layers]
    return True


@lru_cache(maxsize=1)
def _roomy_layer_class() -> type:
    """A DynamicLayer that appends a step's keys and values into spare room at the end of its tensors, where
    DynamicLayer concatenates (a copy, and a fresh allocation, of the whole batch's cache at every step): `keys` and
    `values` are views of the used part of a larger buffer, which grows by a quarter when full."""
    from transformers.cache_utils import DynamicLayer

    class _RoomyLayer(DynamicLayer):
        _room_keys: Any = None
        _room_values: Any = None

        def hold(self, keys: Any, values: Any, length: int) -> None:
            """Take buffers whose first `length` positions are the cache (the rest is room)."""
            self.device, self.is_initialized = keys.device, True
            self._room_keys, self._room_values = keys, values
            self.keys, self.values = keys[:, :, :length], values[:, :, :length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            room, used = self._room_keys, self.keys  # `used`: a view of the room's first positions, unless replaced
            length = used.shape[-2] if room is not None and used is not None else 0
            end = length + key_states.shape[-2]
            # New room when there is none left, or when `keys` was replaced (a crop or reorder of the base class).
            if room is None or used is None or end > room.shape[-2] or used.data_ptr() != room.data_ptr():
                shape = (*key_states.shape[:2], end + _room(end), key_states.shape[-1])
                keys, values = key_states.new_zeros(shape), value_states.new_zeros(shape)
                if length:
                    keys[:, :, :length] = used
                    values[:, :, :length] = self.values
                self.hold(keys, values, length)
            self._room_keys[:, :, length:end] = key_states
            self._room_values[:, :, length:end] = value_states
            self.hold(self._room_keys, self._room_values, end)
            return self.keys, self.values

    return _RoomyLayer


def _cached(session: "TransformersSession") -> int:
    """How many positions the session's own cache holds (0: none yet)."""
    keys = session._cache.layers[0].keys if session._cache.layers else None
    return int(keys.shape[2]) if keys is not None and keys.dim() == 4 else 0


def _row(packed: _Packed, session: "TransformersSession") -> int | None:
    """The session's row (sessions compare by identity: two with the same text are not the same session)."""
    return next((r for r in range(len(packed.members)) if packed.member(r) is session), None)


def _torch() -> Any:
    import torch

    return torch
