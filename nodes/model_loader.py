"""Load SHARP Model: a checkpoint from `models/sharp` (or extra_model_paths.yaml), joined to
ComfyUI's model management so SHARP and diffusion models take turns on the GPU."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import comfy.model_management as mm
import comfy.model_patcher
import folder_paths
import torch

from ..sharp_core import (
    CHECKPOINT_NAME, CHECKPOINT_SUFFIXES, DTYPES, HF_REPO, ArchitectureUnknown, download_checkpoint, load_model,
)
from .common import CATEGORY, MODEL

log = logging.getLogger(__name__)

MODEL_FOLDER = "sharp"
OFFICIAL_REPO = HF_REPO
OFFICIAL_FILENAME = CHECKPOINT_NAME
DTYPE_CHOICES = ("auto", "fp32", "fp16", "bf16")

# Fallback activation estimate per image when the network cannot say: SHARP always works at
# 1536 x 1536 internally, so the peak does not depend on the photo's size. Scaled by bytes/value.
FALLBACK_ACTIVATION_BYTES_FP32 = 6 * 1024**3


def default_model_dir() -> str:
    return os.path.join(folder_paths.models_dir, MODEL_FOLDER)


def register_model_folder() -> None:
    """Add `models/sharp` to ComfyUI's folder list (entries from extra_model_paths.yaml stay)."""
    folder_paths.add_model_folder_path(MODEL_FOLDER, default_model_dir())


def list_checkpoints() -> list[str]:
    """Checkpoints found in every `sharp` folder, plus the official one (downloadable on first use)."""
    found = [f for f in folder_paths.get_filename_list(MODEL_FOLDER) if f.lower().endswith(CHECKPOINT_SUFFIXES)]
    return sorted(set(found) | {OFFICIAL_FILENAME})


def auto_dtype(device: torch.device) -> torch.dtype:
    """What the device runs well: bf16 where supported, else fp16 on accelerators, fp32 on CPU."""
    if mm.is_device_cpu(device):
        return torch.float32
    if mm.should_use_bf16(device):
        return torch.bfloat16
    if mm.should_use_fp16(device):
        return torch.float16
    return torch.float32


class ManagedNet(torch.nn.Module):
    """Holds the SHARP network for ComfyUI's ModelPatcher, which assigns `.device` on load and
    offload and asks `get_dtype()`; the network itself stays untouched as `.net`."""

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype, device: torch.device):
        super().__init__()
        self.net = net
        self.weight_dtype = dtype
        self.device = device

    def get_dtype(self) -> torch.dtype:
        return self.weight_dtype


@dataclass
class ManagedSharpModel:
    """The SHARP_MODEL value passed between nodes."""

    patcher: comfy.model_patcher.ModelPatcher
    name: str

    @property
    def net(self) -> torch.nn.Module:
        return self.patcher.model.net

    @property
    def dtype(self) -> torch.dtype:
        return self.patcher.model.get_dtype()

    def activation_bytes(self, batch_size: int = 1) -> int:
        """Memory a forward pass of `batch_size` images needs beyond the weights."""
        estimate = getattr(self.net, "estimate_activation_memory", None)
        if callable(estimate):
            return int(estimate(batch_size))
        bytes_per_value = torch.finfo(self.dtype).bits // 8
        return int(FALLBACK_ACTIVATION_BYTES_FP32 * bytes_per_value / 4 * batch_size)

    def load_for_inference(self, batch_size: int = 1) -> torch.device:
        """Bring the weights to the compute device, offloading other models if memory is short."""
        mm.load_models_gpu([self.patcher], memory_required=self.activation_bytes(batch_size), force_full_load=True)
        return self.patcher.load_device


class SharpModelLoader:
    DESCRIPTION = "Loads a SHARP checkpoint (single photo -> 3D Gaussians) and hands it to ComfyUI's memory management."
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("sharp_model",)
    OUTPUT_TOOLTIPS = ("The SHARP network, managed by ComfyUI (offloaded when other models need the GPU).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ckpt_name": (list_checkpoints(), {
                    "default": OFFICIAL_FILENAME,
                    "tooltip": f"Checkpoint in models/{MODEL_FOLDER} (or a 'sharp' entry of extra_model_paths.yaml). "
                               f"{OFFICIAL_FILENAME} is the official release from huggingface.co/{OFFICIAL_REPO}.",
                }),
                "dtype": (list(DTYPE_CHOICES), {
                    "default": "auto",
                    "tooltip": "Weight precision. auto: fp32 on CPU, bf16 (or fp16) on GPUs that run it fast.",
                }),
                "download_if_missing": ("BOOLEAN", {
                    "default": True,
                    "tooltip": f"Download {OFFICIAL_FILENAME} from Hugging Face into models/{MODEL_FOLDER} "
                               "when it is selected but not on disk.",
                }),
            }
        }

    def load(self, ckpt_name: str, dtype: str = "auto", download_if_missing: bool = True):
        path = folder_paths.get_full_path(MODEL_FOLDER, ckpt_name)
        if path is None:
            if ckpt_name == OFFICIAL_FILENAME and download_if_missing:
                log.info("SHARP: downloading %s from %s into %s", OFFICIAL_FILENAME, OFFICIAL_REPO, default_model_dir())
                path = str(download_checkpoint(default_model_dir()))  # raises with the manual fix
            else:
                folders = ", ".join(folder_paths.get_folder_paths(MODEL_FOLDER))
                hint = (
                    " or turn download_if_missing on" if ckpt_name == OFFICIAL_FILENAME
                    else f", or pick {OFFICIAL_FILENAME} with download_if_missing on"
                )
                raise FileNotFoundError(
                    f"SHARP checkpoint '{ckpt_name}' not found. Put it into {folders}{hint}."
                )
        if dtype not in DTYPE_CHOICES:
            raise ValueError(f"Unknown dtype '{dtype}': choose auto, fp32, fp16 or bf16.")
        load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
        weight_dtype = auto_dtype(load_device) if dtype == "auto" else DTYPES[dtype]
        try:
            net = load_model(path, device=offload_device, dtype=weight_dtype)
        except ArchitectureUnknown as exc:  # the file is fine: its description is missing
            raise RuntimeError(f"SHARP: {exc}") from None
        except Exception as exc:
            raise RuntimeError(
                f"Could not load the SHARP checkpoint {path}: {exc}. The file may be incomplete or not a SHARP "
                f"checkpoint; delete it and download {OFFICIAL_FILENAME} again (or pick another file)."
            ) from exc
        net.eval()
        patcher = comfy.model_patcher.ModelPatcher(
            ManagedNet(net, weight_dtype, offload_device), load_device=load_device, offload_device=offload_device
        )
        return (ManagedSharpModel(patcher=patcher, name=ckpt_name),)


NODE_CLASS_MAPPINGS = {"SharpModelLoader": SharpModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"SharpModelLoader": "Load SHARP Model"}
