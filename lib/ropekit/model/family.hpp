#pragma once
// The decoder families rope-dump runs, each described by what sets it apart from Llama: the
// steps the decoder layer adds (q/k/v biases, per-head q/k RMSNorm, a sliding window), how its
// checkpoints store the weights (fused projections), and how llama.cpp's converter writes it to
// GGUF (architecture name, RoPE pair layout). A family or a feature not listed is refused by
// name, never run approximately.
#include <string>

#include "ropekit/rope/rope.hpp"

namespace ropekit {

struct Family {
    const char* model_type;       // config.json's model_type
    const char* gguf_arch;        // general.architecture convert_hf_to_gguf.py writes
    Layout gguf_layout;           // interleaved where the converter permutes q/k (llama rope),
                                  // half where llama.cpp rotates the halves (NEOX rope)
    bool qkv_bias = false;        // qwen2: biases on q, k and v
    bool qk_norm = false;         // qwen3: RMSNorm of each q and k head before RoPE
    bool fused = false;           // phi3: qkv_proj and gate_up_proj
    bool sliding_window = false;  // config.json's sliding_window applies to every layer
    bool gemma = false;           // gemma: embeddings × √dim, RMSNorm weights stored as w for
                                  // (1 + w) (the GGUF converter stores 1 + w), GeGLU with the
                                  // tanh GELU instead of SwiGLU
    bool gemma2 = false;          // gemma2: RMSNorm after attention and after the MLP too,
                                  // attention-logit and final-logit soft-capping,
                                  // query_pre_attn_scalar, a sliding window on alternate layers
    bool gemma3 = false;          // gemma3: gemma2's norms with q/k norms, a window on all but
                                  // every 6th layer (layer_types / sliding_window_pattern), and
                                  // two RoPE schedules: the local base, unscaled, on the
                                  // sliding-window layers, rope_theta and its scaling on the others
                                  // (gemma3.hpp)
    bool neox = false;            // gpt_neox: fused query_key_value interleaved per head, LayerNorm
                                  // with bias, GELU MLP with biases, parallel attention and MLP
                                  // (use_parallel_residual), partial rotary from rotary_pct
};

// The family of a config.json model_type; data_error(file, "model_type", ...) for others.
const Family& hf_family(const std::string& model_type, const std::string& file);
// The family llama.cpp reads as `arch` (llama also stands for mistral, which the converter
// writes as llama); data_error(file, "general.architecture", ...) for others.
const Family& gguf_family(const std::string& arch, const std::string& file);

}  // namespace ropekit
