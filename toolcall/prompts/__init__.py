"""Package data: toolcall/prompts."""
