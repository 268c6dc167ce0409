"""The one exception type users see. Its message is one line: the problem, then the fix."""


class StreamlearnError(Exception):
    """A user-facing error: bad input, a missing tool, a corpus in the wrong state."""


class ManifestError(StreamlearnError):
    pass


class ConfigError(StreamlearnError):
    pass


class NotApplicable(StreamlearnError):
    """The stage does not apply to this item (e.g. no audio to transcribe): recorded as `skipped`
    with this message as the reason, never as a failure."""
