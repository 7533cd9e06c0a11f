"""The few-shot prompts P(x) that ask the model to annotate a text with calls to one tool (paper App. A.2 style)."""
from __future__ import annotations

from typing import Any

HEADER = ("Your task is to add calls to a {api} API to a piece of text. {purpose} "
          "You can call the API by writing \"[{usage}]\" where \"{arg}\" is {arg_help}. Here are some examples of API calls:\n\n")

# tool name (lower case) -> (api description, purpose, usage, arg, arg help, examples as (input, output))
TOOL_PROMPTS: dict[str, tuple[str, str, str, str, str, tuple[tuple[str, str], ...]]] = {
    "calculator": (
        "Calculator", "The calls should help you get information required to complete the text.",
        "Calculator(expression)", "expression", "the mathematical expression you want to compute",
        (
            ("The number in the next term is 18 + 12 x 3 = 54.",
             "The number in the next term is 18 + 12 x 3 = [Calculator(18 + 12 * 3)] 54."),
            ("The population is 658,893 people. This is 11.4% of the national average of 5,763,868 people.",
             "The population is 658,893 people. This is 11.4% of the national average of [Calculator(658,893 / 11.4%)] 5,763,868 people."),
            # The paper's Input here ends "three times less than the 2169 goals last year", which its Output does not
            # say (a slip); both take the Output's sentence.
            ("A total of 252 qualifying matches were played, and 723 goals were scored (an average of 2.87 per match). "
             "This is twenty goals more than the 703 goals last year.",
             "A total of 252 qualifying matches were played, and 723 goals were scored (an average of [Calculator(723 / 252)] 2.87 per match). "
             "This is twenty goals more than the [Calculator(723 - 20)] 703 goals last year."),
            ("I went to Paris in 1994 and stayed there until 2011, so in total, it was 17 years.",
             "I went to Paris in 1994 and stayed there until 2011, so in total, it was [Calculator(2011 - 1994)] 17 years."),
            ("From this, we have 4 * 30 minutes = 120 minutes.",
             "From this, we have 4 * 30 minutes = [Calculator(4 * 30)] 120 minutes."),
        ),
    ),
    "calendar": (
        "Calendar", "The calls should help you get information required to complete the text.",
        "Calendar()", "Calendar()", "the call itself: it takes no input and returns today's date",
        (
            ("Today is the first Friday of the year.", "Today is the first [Calendar()] Friday of the year."),
            ("The president of the United States is Joe Biden.",
             "The president of the United States is [Calendar()] Joe Biden."),
            ("The store is open until 8 pm tonight, and the sale ends next Sunday.",
             "The store is open until 8 pm tonight, and the sale ends [Calendar()] next Sunday."),
        ),
    ),
    "qa": (
        "Question Answering", "The calls should help you get information required to complete the text.",
        "QA(question)", "question", "the question you want to ask",
        (
            ("Joe Biden was born in Scranton, Pennsylvania.",
             "Joe Biden was born in [QA(\"Where was Joe Biden born?\")] Scranton, [QA(\"In which state is Scranton?\")] Pennsylvania."),
            ("Coca-Cola, or Coke, is a carbonated soft drink manufactured by the Coca-Cola Company.",
             "Coca-Cola, or [QA(\"What other name is Coca-Cola known by?\")] Coke, is a carbonated soft drink manufactured by [QA(\"Who manufactures Coca-Cola?\")] the Coca-Cola Company."),
        ),
    ),
    "wikisearch": (
        "Wikipedia Search", "The calls should help you get information required to complete the text.",
        "WikiSearch(term)", "term", "the search term you want to look up",
        (
            ("The colors on the flag of Ghana have the following meanings: red is for the blood of martyrs.",
             "The colors on the flag of Ghana have the following meanings: red is for [WikiSearch(\"Ghana flag red meaning\")] the blood of martyrs."),
            ("The name Fernando is of Germanic origin.",
             "The name Fernando is of [WikiSearch(\"Fernando name origin\")] Germanic origin."),
        ),
    ),
    "mt": (
        "Machine Translator", "The calls should help you understand the text.",
        "MT(text)", "text", "the text in any language you want to translate into English",
        (
            ("He has published one book: O homem suprimido (\"The Supressed Man\").",
             "He has published one book: O homem suprimido [MT(\"O homem suprimido\")] (\"The Supressed Man\")."),
            ("In Morris de Jonge's Jeanne, la Pucelle de France (\"Joan of Arc, the Maid of France\").",
             "In Morris de Jonge's Jeanne, la Pucelle de France [MT(\"Jeanne, la Pucelle de France\")] (\"Joan of Arc, the Maid of France\")."),
        ),
    ),
}


def annotation_prompt(tool: str, registry: Any | None = None) -> str:
    """The prompt up to and including `Output:` and a newline; the text follows it (so its tokens match the bare text's)."""
    key = tool.lower()
    if key in TOOL_PROMPTS:
        api, purpose, usage, arg, arg_help, examples = TOOL_PROMPTS[key]
        head = HEADER.format(api=api, purpose=purpose, usage=usage, arg=arg, arg_help=arg_help)
    else:
        # A custom tool: describe it from the registry's docstring-derived description; no worked examples exist.
        desc = ""
        example = None
        if registry is not None:
            found = registry.get(tool)
            desc, example = found.description, found.example
            tool = found.name
        head = (f"Your task is to add calls to a {tool} API to a piece of text. {desc} "
                f"You can call the API by writing \"[{tool}(input)]\". Here are some examples of API calls:\n\n")
        examples = ((example, example),) if example else ()
    shots = "".join(f"Input: {inp}\nOutput:\n{out}\n\n" for inp, out in examples)
    return head + shots + "Input: {text}\nOutput:\n"


def split_prompt(tool: str, text: str, registry: Any | None = None) -> str:
    """The part of P(x) that comes before the copied text x."""
    return annotation_prompt(tool, registry).replace("{text}", text)
