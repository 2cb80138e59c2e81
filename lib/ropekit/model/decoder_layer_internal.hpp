#pragma once
// The steps of one forward pass of a decoder (LlamaModel::forward): token embedding, then per
// layer an attention block and a feed-forward block, each a short function over one workspace
// that the whole call shares. A family that differs in one step (q/k norms, biases, soft-capping,
// sliding windows, parallel attention and MLP) adds or replaces that step, not a longer loop.
// Private to the model module.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ropekit/model/llama_model.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit::decoder {

// Where one forward call is: `tokens` new positions of each of `batch` sequences, continuing
// `start` positions already in the KV cache (0 without one).
struct ForwardShape {
    std::size_t batch = 0, tokens = 0, start = 0;
    std::size_t keys() const { return start + tokens; }
    std::size_t rows() const { return batch * tokens; }
};

// The buffers of one forward call, allocated once and reused by every layer. Rows are
// batch-major, as LayerActivations describes.
struct ForwardWorkspace {
    ForwardWorkspace(const LlamaConfig& c, const ForwardShape& call, const ForwardOptions& options)
        : shape(call),
          qdim(c.n_heads * c.head_dim),
          kvdim(c.n_kv_heads * c.head_dim),
          x(call.rows() * c.dim),
          xb(call.rows() * c.dim),
          q(call.rows() * qdim),
          k(call.rows() * kvdim),
          v(call.rows() * kvdim),
          att(call.rows() * qdim),
          gate(call.rows() * c.hidden_dim),
          up(call.rows() * c.hidden_dim) {
        const std::size_t heads = call.batch * c.n_heads * head_block();
        if (options.keep_scores) scores.resize(heads);
        if (options.keep_pattern) pattern.resize(heads);
    }
    std::size_t head_block() const { return shape.tokens * shape.keys(); }  // one head's [T, keys]

    ForwardShape shape;
    std::size_t qdim, kvdim;   // floats per row of q, and of k and v
    std::vector<float> x, xb;  // the residual stream and its normalised copy [rows, dim]
    std::vector<float> q, k, v, att;
    std::vector<float> q_raw, k_raw;     // q and k before RoPE, kept only for an observer
    std::vector<float> gate, up;         // [rows, hidden_dim]
    std::vector<float> scores, pattern;  // [batch, n_heads, tokens, keys] when kept
};

// Where a layer's keys and values live in the KV cache: [batch, capacity, kvdim] each.
struct LayerCache {
    float* keys = nullptr;
    float* values = nullptr;
    std::size_t capacity = 0;
};

// What one decoder layer runs with. Families that vary attention per layer (per-layer RoPE
// bases, sliding windows, other scales) set it here rather than in the steps below.
struct DecoderLayer {
    std::size_t index = 0;
    const LlamaLayerWeights* weights = nullptr;
    const Schedule* schedule = nullptr;
    float attention_scale = 1.0f;
    std::size_t sliding_window = 0;  // keys a query sees, itself included (0: every earlier one)
    float softcap = 0.0f;            // logits = cap * tanh(logits / cap) (0: none)
    LayerCache cache;                // keys == nullptr without a cache
};

// out[r] = weight * x[r] / rms(x[r]) for each of `rows` rows of `dim` (sums in double).
void rms_norm(const float* x, const float* weight, std::size_t rows, std::size_t dim, double eps,
              float* out);

// x[r] = the embedding of token ids[r], for every row of the call.
void embed_tokens(const std::int64_t* ids, const LlamaConfig& c, const WeightMatrix& embedding,
                  std::vector<float>& x);

// x += attention(rms_norm(x)): the attention half of a decoder layer.
void attention_block(const LlamaConfig& c, const DecoderLayer& layer, const ForwardOptions& options,
                     ForwardWorkspace& ws);

// x += w2 . (silu(w1 . rms_norm(x)) * w3 . rms_norm(x)): the SwiGLU half of a decoder layer.
void feed_forward_block(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws);

// gpt_neox (neox_layer.cpp) --------------------------------------------------------------------

// out[r] = weight * (x[r] - mean) / sqrt(variance + eps) + bias, LayerNorm of each of `rows` rows
// of `dim` (sums in double).
void layer_norm(const float* x, const float* weight, const float* bias, std::size_t rows,
                std::size_t dim, double eps, float* out);

// The family's norm of `rows` rows of c.dim: LayerNorm with `bias` where c.layer_norm, else
// RMSNorm.
void normalize(const LlamaConfig& c, const float* x, const float* weight, const float* bias,
               std::size_t rows, float* out);

// q, k and v (with their biases) from Hugging Face gpt_neox's query_key_value, whose rows
// interleave them per head.
void project_qkv_per_head(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws);

// One gpt_neox layer (c.gelu_mlp): x += attention(ln1(x)) + mlp(ln2(x)) with
// c.parallel_residual, else x += attention(ln1(x)) and then x += mlp(ln2(x)); the MLP is
// w2 . gelu(w3 . x + b3) + b2 with the exact erf GELU.
void neox_layer(const LlamaConfig& c, const DecoderLayer& layer, const ForwardOptions& options,
                ForwardWorkspace& ws);

}  // namespace ropekit::decoder
