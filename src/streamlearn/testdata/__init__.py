"""Data for tests, benchmarks and the demo, never for a user's corpus: the synthetic tour (`synth`,
`synth_plan`), the loopback HTTP server that serves it like a platform (`loopback`), and real
recordings from public packages (`realdata`)."""
