"""Trying a trained model in a browser: the local web page of `scenesynth serve` (serve.py, page.html)."""
