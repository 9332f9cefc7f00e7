"""GenAI Cost Collector: an OpenTelemetry-native collector that prices every LLM call."""

__version__ = "0.1.0"
