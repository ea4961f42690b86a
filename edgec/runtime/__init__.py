"""One runner per runtime (torch, onnxruntime, TensorFlow, TFLite), each with one lifecycle."""
