"""Where work runs: onnxruntime sessions (:mod:`.onnx`), the CuPy/CUDA backend (:mod:`.cuda`, optional)
and the CPUs this process may use (:mod:`.cpu`). The compiled core itself is ``routellm_fast._core``."""
