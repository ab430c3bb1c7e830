"""Converting Hugging Face checkpoints to ONNX routers: BERT (:mod:`.bert`) and causal LLM
(:mod:`.causal`). Both need the ``export`` extra (torch, transformers, onnx)."""
