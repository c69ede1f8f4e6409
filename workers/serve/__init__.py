"""The inference node: an OpenAI-compatible API over our own generation loop, a TOPLOC-style proof per answer,
the registry check of the served version and pipeline-parallel generation (see README.md)."""
