"""Everything on disk, one module per artifact: the corpus layout, the manifests' schemas, transcripts, the frame
cache, descriptions, rewrites, targets, the question bank and its split, run records, the audit, the verdict,
status and the forecast. Imports core/, media/ and models/ only."""
