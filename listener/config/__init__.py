"""Configuration: the files users edit, validated with errors that name file, line and field."""

from listener.config.loader import Config, ConfigError, Problem, load_config

__all__ = ["Config", "ConfigError", "Problem", "load_config"]
