"""ComfyUI node classes: declare inputs, check, delegate to ``utils``."""
