"""Typed errors that gancore raises for bad input, so CLIs can print them without a traceback."""


class GancoreError(Exception):
    """Base class of the errors a user can fix (bad params, bad data, a mismatched resume)."""


MAX_PROBLEM_CHARS = 500
"""Longest problem text of a ConfigError: a huge value is cut, not printed whole."""


class ConfigError(GancoreError):
    """A params key has an unknown name, a wrong type or an impossible value."""

    def __init__(self, key: str, problem: str):
        if len(problem) > MAX_PROBLEM_CHARS:
            problem = problem[:MAX_PROBLEM_CHARS] + f"... ({len(problem)} characters, cut)"
        super().__init__(f"params: {key}: {problem}")
        self.key = key
        self.problem = problem


class DataError(GancoreError):
    """The input images or shards cannot be used (none usable, missing, inconsistent)."""


class DocumentError(DataError):
    """A JSON or YAML file is missing, too large, nested too deeply or not valid; names the file."""

    def __init__(self, path: object, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class ResumeMismatch(GancoreError):
    """A checkpoint was made with another config or dataset than the run asked to resume it."""


class RunLocked(GancoreError):
    """Another process holds the folder (a second training on the same checkpoint folder)."""


class CheckpointError(GancoreError):
    """No checkpoint in a folder can be loaded (all torn, corrupt or missing)."""


class NonFiniteLoss(GancoreError):
    """A loss became NaN or inf and rolling back did not cure it."""


class MetricUnavailable(GancoreError):
    """A metric needs something absent here (e.g. Inception weights); the message says what."""
