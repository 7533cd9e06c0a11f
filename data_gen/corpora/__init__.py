"""Package data: data_gen/corpora."""
