"""The allowed values of every enumerated option, defined once (used by validation, the presets and --help)."""

METHODS = ("seats", "full", "random", "divprune", "fastv", "fastv-om", "dycoke", "visionzip", "visionzip-om",
           "omnizip", "fastvid")
KV_POLICIES = ("survivors", "per_layer")
SCORE_LAYERS = ("previous", "next")
RATIO_MODES = ("table", "exact")
SALIENCY_SPANS = ("official", "encoder")
FRAME_SIZINGS = ("processor", "preset")
PROCESSOR_FPS = ("sampled", "official")  # the fps the processor is told: the true sampling fps, or none (its default)
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
DECODE_MODES = ("auto", "cuda-graph", "compiled", "static", "buffers", "dynamic")  # docs/METHOD.md §8, seats_cli/kvcache.py
