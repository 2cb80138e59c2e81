#pragma once
// GGUF files (llama.cpp) of the architectures of family.hpp (llama, qwen2, qwen3, phi3) as
// convert_hf_to_gguf.py writes them (docs/tools/rope-dump.md): the {arch}.* metadata keys for the
// sizes, RMSNorm epsilon and RoPE (read_gguf_rope: freq_base, dimension_count, linear scaling,
// rope_freqs.weight factors), tensors token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
// attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm and output (absent: tied to the
// embedding); qwen2's attn_{q,k,v}.bias, qwen3's attn_{q,k}_norm, phi3's fused attn_qkv and ffn_up
// ([gate; up]), and its longrope factors (rope_factors_short/long.weight, with
// rope.scaling.attn_factor) as llama.cpp uses them within the original context (longer inputs
// are refused: llama.cpp switches to the long factors there). Weight types F32, F16,
// BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K; matrices stay in the mapping (weight_matrix.hpp). The
// converter permutes the q/k rows of Hugging Face's half-split heads back to adjacent pairs for
// llama, as llama.cpp's rope rotates them, so a llama model runs with the interleaved layout (the
// other architectures keep the halves: NEOX rope) and its q/k hooks come out in that layout
// (docs/formats.md).
#include <string>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

// Throws data_error(file, key or tensor, what) for another architecture, a mixture of experts,
// a missing or mis-shaped tensor, a tensor type outside the list above (naming it), or
// unsupported RoPE scaling.
LlamaModel load_gguf_llama(const std::string& path);

}  // namespace ropekit
