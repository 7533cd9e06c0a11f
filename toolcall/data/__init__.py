"""Package data: toolcall/data."""
