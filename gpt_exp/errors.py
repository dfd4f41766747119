"""The one error type users see for bad input: it names the config key and the fix."""


class ConfigError(ValueError):
    """A configuration that cannot run, found before any long work starts."""
