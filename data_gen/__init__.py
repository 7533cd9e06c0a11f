"""Package data: data_gen."""
