"""Small text corpora shipped with data_gen (written for this project, Apache-2.0)."""
from pathlib import Path

FACTS = Path(__file__).parent / "facts.txt"   # 80 short factual paragraphs with numbers and dates
