"""Package data: grammars."""
