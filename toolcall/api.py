"""The small Python API: `generate(prompt, ...)` builds the prompt, backend, dialect and tools, and runs the loop."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from .backends import get_backend
from .backends.base import Backend
from .errors import ConfigError
from .loop import LoopConfig, LoopResult, offers_tools
from .models import recommended
from .runner import run_loop

if TYPE_CHECKING:
    from .dialects.base import Dialect
    from .dialects.prompt_data import PromptSource
    from .registry import ToolRegistry
    from .toolset import Toolset



def make_backend(backend: str | Backend = "transformers", model: str | None = None,
                 options: Mapping[str, Any] | None = None) -> Backend:
    """A Backend instance: passed through, or built by name with its options."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str):
        raise ConfigError(f"backend is an engine's name (transformers, vllm, fake) or a Backend, not "
                          f"{type(backend).__name__}")
    return get_backend(backend, model, **dict(options or {}))


def make_dialect(dialect: "str | Dialect" = "toolformer", backend: Backend | None = None) -> "Dialect":
    """A Dialect instance: passed through, or built by name; "auto" reads it from the backend's chat template
    (`dialect_for_template`: hermes, mistral, llama3_json, pythonic) and falls back to toolformer."""
    from .dialects import dialect_for_template, get_dialect

    if not isinstance(dialect, str) and not hasattr(dialect, "parse"):
        raise ConfigError(f"dialect is a dialect's name (toolformer, moss, hermes, ...) or a Dialect, not "
                          f"{type(dialect).__name__}")
    if isinstance(dialect, str) and dialect.lower() == "auto":
        template = getattr(getattr(backend, "tokenizer", None), "chat_template", None)
        dialect = dialect_for_template(template) or "toolformer"
    return get_dialect(dialect) if isinstance(dialect, str) else dialect


def make_registry(tools: "Sequence[str] | ToolRegistry | Toolset | None" = ("calculator",),
                  backend: Backend | None = None) -> "ToolRegistry | None":
    """A ToolRegistry: passed through, built from a Toolset, the named built-in/registered tools, or all of them
    (None, or "all" as on the command line); None when that is no tool at all.

    `backend`: a model already loaded, which tools that declare `setup` (MT) then use instead of loading their own.
    """
    from .registry import ToolRegistry
    from .toolset import Toolset, set_up_tools

    if isinstance(tools, ToolRegistry):
        if backend is not None and any(item.setup is not None for item in tools):
            # The caller's registry is theirs: a copy is bound to this backend. Binding theirs made MT translate
            # with whichever backend a concurrent generate() had set up last, and emptied its cache each call.
            own = tools.subset(tools.names())
            set_up_tools(own, backend)
            return own
        return tools
    if isinstance(tools, str) and tools.strip().lower() == "all":
        tools = None   # as the command line's --tools all
    toolset = tools if isinstance(tools, Toolset) else Toolset(names=None if tools is None else tuple(
        [tools] if isinstance(tools, str) else tools))
    registry = toolset.build(backend)
    return registry if len(registry) else None


def _check_arguments(tools: Any, few_shot: Any, raw: Any, prompt_path: Any) -> None:
    """generate()'s arguments of the wrong type as a ConfigError saying what each takes (tools=5 was a TypeError
    from deep inside, few_shot="no" a ValueError, raw="no" was taken as true)."""
    from .registry import ToolRegistry
    from .toolset import Toolset

    if not (tools is None or isinstance(tools, (str, ToolRegistry, Toolset))
            or (isinstance(tools, (list, tuple, set, frozenset)) and all(isinstance(t, str) for t in tools))):
        raise ConfigError(f"generate(tools=...) takes tool names (a list of strings), a Toolset, a ToolRegistry, None "
                          f"for every registered tool or () for none, not {type(tools).__name__} {tools!r:.60}")
    if not isinstance(few_shot, int) or (not isinstance(few_shot, bool) and few_shot < 0):
        raise ConfigError(f"generate(few_shot=...) takes True (every worked example), False (none) or a number "
                          f"K >= 0 (the first K), not {few_shot!r:.60}")
    if not isinstance(raw, bool):
        raise ConfigError(f"generate(raw=...) takes True or False, not {raw!r:.60}")
    if prompt_path is not None and not isinstance(prompt_path, (str, os.PathLike)):
        raise ConfigError(f"generate(prompt_path=...) takes a file's path or None, not {type(prompt_path).__name__}")


def generate(prompt: str, *, backend: str | Backend = "transformers", model: str | None = None,
             dialect: "str | Dialect" = "toolformer",
             tools: "Sequence[str] | ToolRegistry | Toolset | None" = ("calculator",),
             few_shot: bool = True, raw: bool = False, prompt_path: "PromptSource" = None,
             history: list[dict[str, str]] | None = None, backend_options: Mapping[str, Any] | None = None,
             **loop_options: Any) -> LoopResult:
    """Answer `prompt` with tools and return the LoopResult (text, calls, counters).

    `tools`: tool names (case-insensitive), a Toolset (names, --tools-from files, MCP servers), a ToolRegistry,
    None for every registered tool, () for none.
    `history`: earlier messages, [{"role": "user" | "assistant" | "system", "content": str}, ...], before `prompt`.
    `raw=True` sends `prompt` as is, without instructions or chat template. `loop_options` are LoopConfig fields
    (max_calls, max_new_tokens, trigger_top_k, call_threshold, tools_enabled, call_timeout, max_triggers, ...), over
    what the model's folder recommends (its toolcall.json).
    """
    if not isinstance(prompt, str) or not prompt.strip():  # None and bytes failed deep inside, "" ran the model
        raise ConfigError(f"generate() needs the prompt as text that says something, got {prompt!r:.60}")
    unknown = sorted(set(loop_options) - {f.name for f in fields(LoopConfig)})
    if unknown:   # a typo (max_cals=2) was a TypeError from LoopConfig that listed nothing
        raise ConfigError(f"generate() takes no option {unknown[0]!r}; the loop's options are: "
                          f"{', '.join(f.name for f in fields(LoopConfig))}")
    if isinstance(backend, Backend) and (model is not None or backend_options):
        raise ConfigError("model= and backend_options= describe a backend for generate() to build; a built backend "
                          "was passed, which they would not change")
    _check_arguments(tools, few_shot, raw, prompt_path)   # before a model loads: these failed deep inside, or not
    engine = make_backend(backend, model, backend_options)
    d = make_dialect(dialect, engine)
    d.check_history(history)
    if not raw:
        # The text is written into the model's chat template: a special token's text in it (`<|im_end|>` and a new
        # `<|im_start|>system` turn, from a user or a document) would be read as that token and forge turns. It is
        # broken as the server breaks it in messages; `raw=True` takes the text as the prompt, tokens and all.
        from .dialects.base import defuse

        specials = engine.special_texts()
        prompt = defuse(prompt, specials)
        # The assistant's own turns keep their markup (its calls, in the dialect's form, are the model's writing).
        history = [{**m, "content": defuse(m["content"], specials)}
                   if isinstance(m.get("content"), str) and m.get("role") != "assistant" else m
                   for m in history] if history else history
    registry = make_registry(tools, engine)
    config = replace(recommended(LoopConfig(), model if isinstance(backend, str) else None), **loop_options)
    shown = registry.specs() if registry is not None and offers_tools(config, d) else None
    full = prompt if raw else d.prompt(prompt, shown, engine.chat_prompt, history, few_shot, prompt_path)
    return run_loop(engine, full, d, registry, config)
