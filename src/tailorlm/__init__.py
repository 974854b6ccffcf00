"""TailorLM."""
