"""`python -m toolcall` runs the CLI."""
import sys

from .cli import entry

sys.exit(entry())
