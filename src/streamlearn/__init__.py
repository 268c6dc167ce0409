"""streamlearn: turn one person's long first-person video stream into a training corpus,
continually pretrain a vision-language model on it, and measure what it learned."""

__version__ = "0.1.0"
