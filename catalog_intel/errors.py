"""Every error a user can meet, in one place: each message names the file, key or row and what to do.
Ground level: imports nothing of catalog_intel."""


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message says which key."""


class SourceError(ValueError):
    """The run's input (folder or manifest) cannot be used at all."""


class FactsError(SourceError):
    """A facts file cannot be used; the message names the file and what to do."""


class EditsError(FactsError):
    """The edits file cannot be used; the message names the file, row and fix."""


class ImageRejected(Exception):
    """The file cannot be used as a product image; str(exc) is the reason."""


class OutputLocked(RuntimeError):
    """Another run holds the output folder."""


class ModelUnavailableError(RuntimeError):
    """The configured model cannot be loaded here; the message says how to fix it."""


class WeightsNotCached(ModelUnavailableError):
    """Pretrained weights that a download could supply are not in the cache."""


class ModelIntegrityError(ModelUnavailableError):
    """The assembled model does not have the expected size or sha256."""


class EmbeddedServerError(RuntimeError):
    """The embedded llama.cpp server failed to start or died."""


class HeadError(ValueError):
    """A head file is missing, malformed or does not fit this run; the message says what to do."""


class SearchError(ValueError):
    """A search cannot be answered; the message says which file or query and what to do."""


class EvaluationError(ValueError):
    """Predictions or labels cannot be scored; the message names the file and what to do."""


class CopyQualityError(ValueError):
    """An output file cannot be assessed; the message names the file and what to do."""


class ServerStartError(RuntimeError):
    """Prefect's temporary server did not come up."""


class RunFailed(RuntimeError):
    """The run finished its outputs but must be reported as failed."""
