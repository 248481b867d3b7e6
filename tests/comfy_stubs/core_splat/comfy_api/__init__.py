"""Stand-in for a current ComfyUI's `comfy_api` package (only what the splat converters touch).

Importable only where a test puts `tests/comfy_stubs/core_splat` on sys.path (see
tests/test_core_splat_nodes.py); every other test runs without a `comfy_api`, like ComfyUI 0.3.x.
"""
