"""Word problems with their annotated answers become chat records whose reply is the answer and its call."""
from __future__ import annotations

from script_module import BENCHMARKS, load_script


def test_the_answer_with_its_call_is_the_reply_and_the_problem_the_prompt() -> None:
    module = load_script(BENCHMARKS / "word_problem_chat.py")
    problem = "A pack costs 76 dollars with 25 off. How much do you pay?"
    answered = {"original": f"{problem} The answer is 51.",
                "text": f"{problem} The answer is [Calculator(76 - 25) -> 51] 51."}
    body_only = {"original": "He had 6 and 3 came, 2 more. How many? The answer is 9.",
                 "text": "He had 6 and 3 came, [Calculator(6 / 3) -> 2] 2 more. How many? The answer is 9."}
    no_answer = {"original": "Tom has 3 bags of 4, so 12.", "text": "Tom has 3 bags of 4, so [Calculator(3 * 4) -> 12] 12."}

    def chat(messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    (record,) = module.chat_records([answered, body_only, no_answer], chat)
    assert record["text"] == f"<user>{problem}</user><assistant>The answer is [Calculator(76 - 25) -> 51] 51."
    assert record["text"][record["prompt_chars"]:].startswith("The answer is [Calculator(")
