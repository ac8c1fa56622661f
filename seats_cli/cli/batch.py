"""`seats batch`: JSONL in, JSONL out, the model loaded once."""
