"""Passes: steps that stay inside one format (an ONNX graph in, an equivalent ONNX graph out)."""
