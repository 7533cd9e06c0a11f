"""Writing the corpus in other forms: an HF `datasets` dataset on disk and MOSS-format conversations.

MOSS mapping (moss-003 SFT plugin layout, one turn per text):
- Human: "Continue the text: " + the original text up to the first call's position (stripped);
- Inner Thoughts: "None" (the corpus has no reasoning to put there);
- Commands: every call of the text, in order, comma-separated, tool names mapped to MOSS's API names
  (Calculator -> Calculate, WikiSearch/Search -> Search, Solve -> Solve; others keep their name);
- Tool Responses: one `Name("arg") => 'result'` line per call;
- MOSS: the rest of the original text (from the first call's position on), so the reply is what the tools helped write.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolcall.errors import MissingDependencyError

MOSS_NAMES = {"calculator": "Calculate", "calculate": "Calculate", "wikisearch": "Search", "search": "Search", "solve": "Solve"}
META = ("You are an AI assistant whose name is MOSS.\n"
        "Capabilities and tools that MOSS can possess.\n"
        "- Inner thoughts: enabled.\n- Web search: {search}. API: Search(query)\n"
        "- Calculator: {calc}. API: Calculate(expression)\n- Equation solver: {solve}. API: Solve(equation)\n"
        "- Text-to-image: disabled.\n- Image edition: disabled.\n- Text-to-speech: disabled.\n")


def read_corpus(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _moss_command(call: dict[str, Any]) -> str:
    name = MOSS_NAMES.get(call["tool"].lower(), call["tool"])
    args = ", ".join(json.dumps(str(a), ensure_ascii=False) for a in call["args"])
    return f"{name}({args})"


def to_moss(record: dict[str, Any], index: int, tools: list[str]) -> dict[str, Any]:
    original = record["original"]
    first = record["calls"][0]["position"]
    commands = [_moss_command(c) for c in record["calls"]]
    results = "\n".join(f"{cmd} => {str(c['result'])!r}" for cmd, c in zip(commands, record["calls"]))
    enabled = {t.lower() for t in tools}
    meta = META.format(search="enabled" if enabled & {"search", "wikisearch"} else "disabled",
                       calc="enabled" if "calculator" in enabled else "disabled",
                       solve="enabled" if "solve" in enabled else "disabled")
    turn = {
        "Human": f"<|Human|>: Continue the text: {original[:first].strip()}<eoh>\n",
        "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
        "Commands": f"<|Commands|>: {', '.join(commands)}<eoc>\n",
        "Tool Responses": f"<|Results|>:\n{results}\n<eor>\n",
        "MOSS": f"<|MOSS|>: {original[first:].strip()}<eom>\n",
    }
    return {"conversation_id": index + 1, "meta_instruction": meta, "num_turns": 1, "chat": {"turn_1": turn}}


def write_moss(records: list[dict[str, Any]], path: Path, tools: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i, rec in enumerate(records):
            fh.write(json.dumps(to_moss(rec, i, tools), ensure_ascii=False) + "\n")


def write_hf_dataset(records: list[dict[str, Any]], path: Path) -> None:
    """datasets.save_to_disk; call args are stored as strings so the Arrow schema is one type."""
    try:
        import datasets
    except ImportError as err:
        raise MissingDependencyError("datasets", "hf", "exporting an HF dataset") from err
    rows = [{**r, "calls": [{**c, "args": [str(a) for a in c["args"]], "result": str(c["result"])} for c in r["calls"]]}
            for r in records]
    if rows:
        ds = datasets.Dataset.from_list(rows)
    else:
        ds = datasets.Dataset.from_dict({"text": [], "original": [], "calls": []})
    ds.save_to_disk(str(path))
