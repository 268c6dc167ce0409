"""Models: the presets and their geometry, the tokenizer, the smol conversion, loading, inference and the
OpenAI-compatible client. Imports core/ and media/ only."""
