"""`seats profile`: per-layer schedule, FLOPs and measured prefill latency."""
