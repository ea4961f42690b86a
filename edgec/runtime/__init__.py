"""The runtime layer: the one place models are run. One runner per runtime, each with one
lifecycle (``load`` -> ``inputs``/``outputs`` metadata -> ``infer`` on named arrays -> ``close``;
a context manager too):

- ``tflite.TFLite``: the only TFLite interpreter construction (ai_edge_litert, tflite_runtime or
  tf.lite; delegate, threads, quantized I/O). Standard library + numpy, so the same file runs on a
  board and as a probe script in another venv. It also holds what every runner shares
  (``Runner``, ``TensorInfo``, ``quantize_array``/``dequantize_array``).
- ``onnxruntime.OnnxRuntime``: the only ``InferenceSession`` construction.
- ``tensorflow.SavedModel`` / ``tensorflow.Keras``, ``torch.Torch``.
- ``runners``: the same runners seen in the source model's names and layout (the parity ledger's
  view, ``runner_for``); ``loaders``: reading models and their inputs safely; ``isolated``: a run
  in a child process, where a signal or a hang becomes an error.
"""
