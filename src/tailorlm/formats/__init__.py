"""Example schemas, importers from common dataset formats, and chat-template rendering with loss masks."""
