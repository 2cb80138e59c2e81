#pragma once
// llama2.c's legacy checkpoint format (export.py --version 0, the tinyllamas files):
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//   (vocab_size < 0: the classifier is stored separately; > 0: it is the token embedding),
//   then float32 token_embedding_table, rms_att_weight, wq, wk, wv, wo, rms_ffn_weight, w1, w2,
//   w3, rms_final_weight, the unused freq_cis_real / freq_cis_imag tables
//   (seq_len * head_dim / 2 floats each), and wcls when not shared.
// RoPE: theta 10000 on adjacent (interleaved) pairs over the whole head.
#include <cstdint>
#include <string>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

struct Llama2cHeader {
    std::int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// The config a header describes and the exact file size it implies. Throws data_error naming
// `file` for absurd or inconsistent values.
LlamaConfig llama2c_config(const Llama2cHeader& header, const std::string& file);
std::uint64_t llama2c_file_size(const LlamaConfig& config);

// Memory-maps a checkpoint (the weights are used in place). Throws data_error for a missing,
// truncated or oversized file or a bad header. The model's name is the file's stem.
LlamaModel load_llama2c(const std::string& path);

}  // namespace ropekit
