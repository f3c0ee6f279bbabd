"""Weight-only, group-wise quantisation of the sampler copy, as a GGUF inference engine serves a model.

``int8`` is GGUF Q8_0 (blocks of 32 weights, one fp16 scale each, symmetric int8); ``int4`` is GGUF Q4_1
(blocks of 32, an fp16 scale and an fp16 minimum each, 4-bit codes): the format SmolLM2-135M ships in. The
quantiser is the ``gguf`` package's own (``gguf.quants.quantize`` / ``dequantize``, the Python reference of
ggml-quants.c, maintained with llama.cpp), which transformers already needs to read GGUF files: no new
dependency, bit-exact with the files llama.cpp writes. torchao and hqq would add a dependency (and CUDA-first
kernels) for the same round trip.

Only the weights are quantised (W8A32 / W4A32): the sampler computes in fp32 with the dequantised weights,
so the mismatch it causes is the quantisation's alone, and the CPU runs it at fp32 speed. A tensor is
quantised when it is a matrix whose rows split into whole blocks (every linear layer and the embedding of a
transformer); vectors (norms, biases) stay in full precision, as llama.cpp keeps them. With LoRA, the base
weights are quantised and the adapter stays in full precision, as vLLM serves LoRA on a quantised base
(``lora_`` tensors are never quantised).
"""

from __future__ import annotations

import numpy as np
import torch

QUANT_TYPES = {"int8": "Q8_0", "int4": "Q4_1"}
BLOCK = 32  # weights per block in Q8_0, Q4_0 and Q4_1


def _qtype(precision: str):
    from gguf.constants import GGMLQuantizationType

    return GGMLQuantizationType[QUANT_TYPES[precision]]


def quantisable(name: str, tensor: torch.Tensor) -> bool:
    """A matrix of whole blocks per row, not a LoRA adapter tensor."""
    return tensor.dim() >= 2 and tensor.shape[-1] % BLOCK == 0 and "lora_" not in name


def round_trip(weight: torch.Tensor, precision: str) -> torch.Tensor:
    """``weight`` quantised to ``precision`` (int8 = Q8_0, int4 = Q4_1) by gguf's quantiser and dequantised back,
    in the weight's dtype and device."""
    from gguf.quants import dequantize, quantize

    qtype = _qtype(precision)
    data = weight.detach().to("cpu", torch.float32).numpy()
    restored = dequantize(quantize(np.ascontiguousarray(data), qtype), qtype)
    return torch.from_numpy(np.ascontiguousarray(restored)).to(weight.device, weight.dtype)
