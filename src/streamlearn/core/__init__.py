"""The lowest layer: configuration, errors, console output, safe paths, manifests, files, the chunk store,
redaction and text normalisation. It imports nothing of streamlearn outside core/."""
