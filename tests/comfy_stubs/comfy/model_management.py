"""Stand-in for `comfy.model_management` (tests only): CPU as the only device, a recorded
`load_models_gpu`, and ComfyUI's interrupt flag semantics (cleared when it raises)."""

from __future__ import annotations

import threading

import torch

current_loaded_models: list = []
_load_calls: list[dict] = []  # tests read what the nodes asked for
_lock = threading.RLock()
_interrupt = False


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def is_device_cpu(device) -> bool:
    return getattr(device, "type", device) == "cpu"


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return device is not None and not is_device_cpu(device)


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return device is not None and not is_device_cpu(device)


def get_free_memory(dev=None, torch_free_too=False):
    free = 64 * 1024**3
    return (free, free) if torch_free_too else free


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    _load_calls.append({
        "models": list(models), "memory_required": memory_required, "force_full_load": force_full_load,
    })
    for patcher in models:
        patcher.patch_model(patcher.load_device)
        if patcher not in current_loaded_models:
            current_loaded_models.insert(0, patcher)


def load_model_gpu(model):
    return load_models_gpu([model])


def unload_all_models():
    for patcher in current_loaded_models:
        patcher.detach()
    current_loaded_models.clear()


def soft_empty_cache(force=False):
    pass


def interrupt_current_processing(value=True):
    global _interrupt
    with _lock:
        _interrupt = value


def processing_interrupted():
    with _lock:
        return _interrupt


def throw_exception_if_processing_interrupted():
    global _interrupt
    with _lock:
        if _interrupt:
            _interrupt = False
            raise InterruptProcessingException()
