"""Providers: where spend is read from (OpenRouter over HTTP, or a simulated account)."""
