"""The query language of saved searches: `syntax` parses it, `evaluate` runs it on a post."""

from listener.query.syntax import QuerySyntaxError, parse

__all__ = ["QuerySyntaxError", "parse"]
