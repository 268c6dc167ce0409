"""Media: probing and decoding recordings, voice activity, the vision budget and frames -> model pixels.
Imports core/ only."""
