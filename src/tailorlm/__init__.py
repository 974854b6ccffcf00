"""TailorLM: fine-tune open LLMs on a company's own data, on its own machines, with a record of every step."""

__version__ = "0.1.0"
