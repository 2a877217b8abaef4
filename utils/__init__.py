"""CleanCut's library: pure batched torch functions. Nothing here imports ComfyUI."""
