"""A data-gen corpus of word problems with their answers (`... The answer is 51.`) as chat records to train on.

Each kept text whose answer got its call becomes the conversation the evaluation holds: the problem as the user's turn
in the model's chat template, then the annotated answer as the assistant's reply (`The answer is [Calculator(76 - 25)
-> 51] 51.`). `prompt_chars` marks where the reply starts, so `toolcall train` learns the reply only. Texts whose
answer got no call are left out (a call kept in the problem's body teaches nothing about answering).

    python benchmarks/word_problem_chat.py --corpus DIR/corpus.jsonl --out chat.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: The sentence benchmarks/data/split_svamp.py writes after each problem.
ANSWER = " The answer is "


def chat_records(corpus: list[dict[str, Any]], chat: Any) -> list[dict[str, Any]]:
    """{"text", "prompt_chars"} for every record whose answer holds a call; `chat(messages)` renders a prompt."""
    out = []
    for rec in corpus:
        text, original = str(rec["text"]), str(rec["original"])
        if ANSWER not in original or ANSWER not in text:
            continue
        reply = text[text.rindex(ANSWER) + 1:]
        if "[" not in reply:
            continue
        prompt = chat([{"role": "user", "content": original[:original.rindex(ANSWER)]}])
        out.append({"text": prompt + reply, "prompt_chars": len(prompt)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="data-gen's corpus.jsonl")
    parser.add_argument("--out", type=Path, required=True, help="the chat records to write (.jsonl)")
    parser.add_argument("--model", default=None, help="whose chat template (default: the embedded model)")
    args = parser.parse_args(argv)
    from toolcall.backends.hf_loading import load_model_and_tokenizer

    _, tokenizer = load_model_and_tokenizer(args.model)

    def chat(messages: list[dict[str, str]]) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    corpus = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").split("\n") if line.strip()]
    records = chat_records(corpus, chat)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(json.dumps({"benchmark": "word_problem_chat", "corpus_records": len(corpus), "chat_records": len(records)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
