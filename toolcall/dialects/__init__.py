"""Package data: toolcall/dialects."""
