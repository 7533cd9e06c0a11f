"""Package data: tools."""
