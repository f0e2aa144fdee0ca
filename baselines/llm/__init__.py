"""LLM backends (one class + one YAML under configs/llm/ each): vLLM server (OpenAI-compatible API, given URL
or launched for the run), vLLM offline engine, HF transformers generate (the sequential reference)."""
