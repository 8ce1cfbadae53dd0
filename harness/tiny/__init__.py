"""The tiny world every code path runs on here (CPU, offline): the bundled data (data) and the tiny Llama built from it
(model)."""
