"""Stand-in for `comfy.model_patcher.ModelPatcher` (tests only): the attributes and the device
bookkeeping ComfyUI's patcher does on a plain nn.Module (it sets `model.device`, so a model whose
`device` cannot be assigned fails here as it would in ComfyUI)."""

from __future__ import annotations

import comfy.model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        if getattr(self.model, "device", None) is None:
            self.model.device = offload_device
        self.load_device = load_device
        self.offload_device = offload_device
        self.weight_inplace_update = weight_inplace_update
        self.parent = None
        self.patches = {}
        self.model_options = {"transformer_options": {}}
        if not hasattr(self.model, "model_loaded_weight_memory"):
            self.model.model_loaded_weight_memory = 0
        self.model_size()

    def model_size(self):
        if self.size <= 0:
            self.size = comfy.model_management.module_size(self.model)
        return self.size

    def loaded_size(self):
        return self.model.model_loaded_weight_memory

    def model_dtype(self):
        if hasattr(self.model, "get_dtype"):
            return self.model.get_dtype()

    def current_loaded_device(self):
        return self.model.device

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def clone(self):
        return ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)

    def model_patches_models(self):
        return []

    def model_patches_to(self, device):
        pass

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if device_to is not None and load_weights:
            self.model.to(device_to)
            self.model.device = device_to
            self.model.model_loaded_weight_memory = self.model_size()
        return self.model

    def detach(self, unpatch_all=True):
        self.model.to(self.offload_device)
        self.model.device = self.offload_device
        self.model.model_loaded_weight_memory = 0
        return self.model
