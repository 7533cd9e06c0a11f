"""Package data: the Lark grammars of the call dialects, opened with Lark.open_from_package("toolcall.grammars", ...)."""
