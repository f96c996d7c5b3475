"""Batch analysis of image/video archives (``emoar batch``): planner, chunk analyser, engines, sinks."""
