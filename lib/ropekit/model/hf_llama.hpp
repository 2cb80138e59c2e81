#pragma once
// Hugging Face checkpoints of the families of family.hpp: a directory with config.json
// (model_type llama, mistral, qwen2, qwen3 or phi3) and model.safetensors or a sharded
// model.safetensors.index.json. Weights may be F32, F16 or BF16 (converted to float32 once, at
// load). RoPE follows the config through hf_rope.hpp (transformers parity, including llama3 / yarn
// / proportional p-RoPE) on the half-split layout that HF's convert script produces by permuting
// the q/k rows of Meta's interleaved weights.
#include <string>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

// Throws data_error(file, key or tensor, what) for anything missing, mis-shaped or unsupported
// (MLP biases, non-SiLU activations, per-layer RoPE types, per-layer sliding windows, other
// model types).
LlamaModel load_hf_llama(const std::string& directory);

}  // namespace ropekit
