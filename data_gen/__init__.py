"""data_gen: the Toolformer corpus pipeline, prefilter -> positions -> sample -> execute -> filter -> merge -> export."""
