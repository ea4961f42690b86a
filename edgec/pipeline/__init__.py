"""The build: its context, steps, cache, manifest and publishing (``edgec.pipeline.build``)."""
