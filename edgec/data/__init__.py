"""The build's data: sample sets, value constraints, calibration, the built-in example."""
