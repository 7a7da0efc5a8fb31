"""Models that stages share: the OpenAI-compatible LLM client and the structured-output
formats each server accepts, text embeddings, prompt templates."""
