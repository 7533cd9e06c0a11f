"""Stage 4: run the candidate calls through the tool registry, in parallel, each distinct call once; results follow
the text's number style."""
from __future__ import annotations

import contextvars
import json
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolcall.registry import ToolRegistry

from toolcall.dialects.base import defuse

from .config import ExecuteConfig
from .records import TextRecord, bump
from .user_hooks import hook_value, usable_restyle

#: Results a run keeps for reuse across texts (each at most the registry's 32,768 characters).
RESULT_CACHE_SIZE = 1_024

class CallRunner:
    """Runs (tool, args) pairs; results of cacheable tools are kept for the run, so repeated calls across texts cost nothing.

    A tool made with cache=False (Calendar, WikiSearch, QA) is run again for every text that calls it: its answer
    may change between calls. Within one text a distinct call still runs once.
    """

    def __init__(self, registry: ToolRegistry, config: ExecuteConfig = ExecuteConfig(),
                 special_texts: tuple[str, ...] = ()) -> None:
        self.registry = registry
        self.config = config
        #: The scoring tokenizer's special texts: a result quoting one (`<|endoftext|>` in a passage) is broken so that
        #: the filter and the corpus read it as text, not as that token.
        self.special_texts = special_texts
        # Results of cacheable tools, the most recently used kept (it grew with the run: 1.8 GB by 200 texts of a tool
        # returning 40 distinct 32 kB results each).
        self._cache: OrderedDict[str, Any] = OrderedDict()
        # One pool of threads for the whole run rather than one per text. (Isolated tools' worker processes no longer
        # depend on which thread started them: toolcall.executor starts them all from one long-lived thread.)
        self._pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="toolcall-call")

    def restyle(self, tool: str, result: str, following: str) -> str:
        """`result` written in the style of the text after the call, by the tool's own `restyle` (same value; a tool
        without one returns its result as it is)."""
        try:
            found = self.registry.get(tool)
        except KeyError:
            return result
        restyler = found.restyle
        if restyler is None:
            return result
        return hook_value(tool, "restyle", lambda: restyler(result, following), result, usable_restyle(result),
                          timeout=found.timeout, owner=restyler)

    def _cacheable(self, tool: str) -> bool:
        try:
            return bool(self.registry.get(tool).cacheable)
        except KeyError:       # an unknown tool: registry.call reports it as a failure, nothing to keep
            return False

    def run_many(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        keys = [json.dumps([tool, args], default=str) for tool, args in calls]
        found = {k: self._cache[k] for k in keys if k in self._cache}
        for k in found:
            self._cache.move_to_end(k)
        todo = {k: c for k, c in zip(keys, calls) if k not in found}
        if todo:
            # registry.call never raises: failures come back as ok=False with an error text.
            # Each call runs in a copy of the caller's context, so a tool reads the text it is called for
            # (toolcall.tool_type.text_context: e.g. Calendar answers with the record's date).
            results = self._pool.map(
                lambda job: job[0].run(self.registry.call, job[1][0], job[1][1], timeout=self.config.timeout),
                [(contextvars.copy_context(), c) for c in todo.values()])
            for (key, (tool, _)), result in zip(todo.items(), results):
                if self.special_texts:
                    result = replace(result, text=defuse(result.text, self.special_texts))
                found[key] = result
                if self._cacheable(tool):
                    self._cache[key] = result
                    while len(self._cache) > RESULT_CACHE_SIZE:
                        self._cache.popitem(last=False)
        return [found[k] for k in keys]


def execute_calls(record: TextRecord, runner: CallRunner) -> TextRecord:
    """record -> record whose candidates carry a result (failures are dropped and counted when drop_errors).

    With config.restyle a result is written the way the text writes the number after the call when both are the
    same value ("[Calculator(1,240 + 1,560) -> 2,800] 2,800", not "-> 2800"), else the loss filter would punish a
    right call.
    """
    cands = record.candidates
    counts = record.counts
    pending = [c for c in cands if c.result is None]
    results = runner.run_many([(c.tool, list(c.args)) for c in pending])
    done = [c for c in cands if c.result is not None]
    rejected = list(record.rejected)
    for cand, res in zip(pending, results):
        counts = bump(counts, cand.tool, "executed")
        if not res.ok:
            counts = bump(counts, cand.tool, "errors")
            if runner.config.drop_errors:
                rejected.append({"stage": "execute", "tool": cand.tool, "position": cand.position,
                                 "call": cand.call, "reason": res.error or res.text})
                continue
        if not res.ok:
            result = res.error or res.text
        elif runner.config.restyle:
            result = runner.restyle(cand.tool, res.text, record.text[cand.position:])
        else:
            result = res.text
        done.append(replace(cand, result=result))
    return replace(record, candidates=tuple(done), counts=counts, rejected=tuple(rejected))
