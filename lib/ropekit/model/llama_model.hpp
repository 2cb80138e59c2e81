#pragma once
// A Llama-style decoder (llama2.c, and the Hugging Face and GGUF families of family.hpp) run on
// the CPU in float32: RMSNorm (sums in double), grouped-query attention with RoPE from a Schedule
// (with the family's biases, q/k norms and sliding window), SwiGLU feed-forward. Projections are
// OpenBLAS SGEMMs over every token of every sequence at once (prefill); attention is one
// causal_scores + causal_softmax + SGEMM per (sequence, head).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/model/weight_matrix.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

struct LlamaConfig {
    std::size_t dim = 0;         // residual width
    std::size_t hidden_dim = 0;  // feed-forward width
    std::size_t n_layers = 0;
    std::size_t n_heads = 0;     // query heads
    std::size_t n_kv_heads = 0;  // key/value heads (divides n_heads)
    std::size_t head_dim = 0;    // dims per head
    std::size_t vocab_size = 0;
    std::size_t seq_len = 0;      // trained context (informational: longer inputs still run)
    double norm_eps = 1e-5;       // RMSNorm epsilon
    double rope_theta = 10000.0;  // the RoPE base (the Schedule holds the actual frequencies)
    bool shared_classifier = true;
    std::string family = "llama";    // family.hpp: the model_type it was read as
    std::size_t sliding_window = 0;  // a query sees this many keys, itself included (0: all)
    float embedding_scale = 1.0f;    // gemma: embeddings are multiplied by √dim (in float32)
    bool geglu = false;              // gemma: GeGLU with the tanh GELU instead of SwiGLU
    double attention_scale = 0.0;    // logits = scale * q.k (0: 1/sqrt(head_dim))
    float attn_softcap = 0.0f;       // gemma2: logits = cap * tanh(logits / cap) (0: none)
    float final_softcap = 0.0f;      // gemma2: the same on the output logits
    // gemma2: 1 where a layer uses sliding_window, 0 where it sees every key (empty: all use it)
    std::vector<int> sliding_layers;
    std::string rope_scaling = "default";  // the rope type of the schedule, for the dump
    // Longer inputs would need another schedule (longrope's long_factor): refused (0: none).
    std::size_t max_tokens = 0;
    // gemma3: the base of the local schedule its sliding-window layers use (0: every layer uses
    // the one schedule). The local schedule itself is LlamaModel::local_schedule().
    double rope_local_theta = 0.0;
    bool layer_norm = false;         // gpt_neox: LayerNorm (mean removed, plus a bias), not RMSNorm
    bool gelu_mlp = false;           // gpt_neox: w2 . gelu(w3 . x + b3) + b2, the exact erf GELU
    bool parallel_residual = false;  // gpt_neox: x + attention(ln1(x)) + mlp(ln2(x))
};

// Matrices are [out, in] (llama2.c, PyTorch's nn.Linear and ggml store them so), resident or
// stored in the checkpoint's own type (weight_matrix.hpp); norm weights are always float32.
struct LlamaLayerWeights {
    const float* rms_att = nullptr;   // [dim]
    Projection wq;                    // [n_heads * head_dim, dim]
    Projection wk;                    // [n_kv_heads * head_dim, dim]
    Projection wv;                    // [n_kv_heads * head_dim, dim]
    Projection wo;                    // [dim, n_heads * head_dim]
    const float* rms_ffn = nullptr;   // [dim]
    Projection w1;                    // [hidden_dim, dim] gate
    Projection w2;                    // [dim, hidden_dim] down
    Projection w3;                    // [hidden_dim, dim] up
    const float* q_norm = nullptr;    // [head_dim] RMSNorm of each q head before RoPE (qwen3)
    const float* k_norm = nullptr;    // [head_dim] likewise for k
    const float* post_att = nullptr;  // [dim] gemma2: RMSNorm of the attention output
    const float* post_ffn = nullptr;  // [dim] gemma2: RMSNorm of the MLP output
    // gpt_neox: the LayerNorm biases [dim] (rms_att and rms_ffn hold LayerNorm's weights then).
    const float* att_norm_bias = nullptr;
    const float* ffn_norm_bias = nullptr;
    // gpt_neox's query_key_value as Hugging Face stores it: rows [n_heads, 3, head_dim], q, k and
    // v of each head in turn (bias likewise); wq, wk and wv are unused when it has rows.
    Projection qkv_per_head;
};

// phi3's fused projections, the same in its checkpoints and its GGUF files: qkv's rows are
// [q; k; v], gate_up's [gate; up]; the layer's projections become views of their rows.
void split_fused_projections(const WeightMatrix& qkv, const WeightMatrix& gate_up,
                             const LlamaConfig& c, LlamaLayerWeights& w);

struct LlamaWeights {
    WeightMatrix token_embedding;  // [vocab, dim]
    std::vector<LlamaLayerWeights> layers;
    const float* rms_final = nullptr;  // [dim]
    Projection classifier;             // [vocab, dim] (the token embedding when shared)
    // gpt_neox: the final LayerNorm's bias [dim].
    const float* final_norm_bias = nullptr;
};

// What one attention layer computed, handed to an observer (the dump hooks). Pointers are valid
// only during the call. Rows are batch-major: row b * tokens + i is position start + i of
// sequence b.
struct LayerActivations {
    std::size_t layer = 0;
    std::size_t batch = 0;
    std::size_t tokens = 0;        // query positions in this call
    std::size_t keys = 0;          // key positions (start + tokens)
    std::size_t start = 0;         // position of the first query
    const float* q = nullptr;      // [batch, tokens, n_heads, head_dim] before RoPE
    const float* k = nullptr;      // [batch, tokens, n_kv_heads, head_dim] before RoPE
    const float* rot_q = nullptr;  // after RoPE
    const float* rot_k = nullptr;
    const float* scores = nullptr;   // [batch, n_heads, tokens, keys] scaled logits, -inf masked
    const float* pattern = nullptr;  // [batch, n_heads, tokens, keys] softmax
};

struct ForwardOptions {
    const Schedule* schedule = nullptr;  // overrides the model's own (e.g. p-RoPE at inference);
                                         // with two schedules (gemma3), the global layers' one
    std::function<void(const LayerActivations&)> observer;
    bool keep_scores = false;   // give the observer the scores (costs batch*heads*T*T floats)
    bool keep_pattern = false;  // likewise for the pattern
    // gemma3: overrides the local schedule of its sliding-window layers (model.local_schedule())
    const Schedule* local_schedule = nullptr;
};

// Rotated keys and values of the positions seen so far, for token-by-token generation.
class KVCache {
  public:
    KVCache(const LlamaConfig& config, std::size_t batch, std::size_t capacity);
    std::size_t length() const { return length_; }
    std::size_t capacity() const { return capacity_; }

  private:
    friend class LlamaModel;
    std::size_t batch_, capacity_, row_;  // row_ = n_kv_heads * head_dim
    std::size_t length_ = 0;
    std::vector<std::vector<float>> keys_, values_;  // per layer [batch, capacity, row_]
};

class LlamaModel {
  public:
    // `storage` keeps whatever the weight pointers point into alive (a mapping or a buffer).
    LlamaModel(LlamaConfig config, Schedule schedule, LlamaWeights weights,
               std::shared_ptr<const void> storage, std::string name);

    const LlamaConfig& config() const { return config_; }
    const Schedule& schedule() const { return schedule_; }  // the checkpoint's own RoPE
    // gemma3's second schedule, of its sliding-window layers (nullptr: one for every layer),
    // and whether `layer` uses it.
    const Schedule* local_schedule() const { return local_ ? &*local_ : nullptr; }
    bool uses_local_schedule(std::size_t layer) const;
    // A model whose sliding-window layers use `local` (gemma3); the others use the schedule.
    void set_local_schedule(Schedule local);
    const LlamaWeights& weights() const { return weights_; }
    const std::string& name() const { return name_; }

    // Runs `batch` sequences of `tokens` ids each (row-major [batch, tokens]) and returns the
    // final-norm hidden states [batch * tokens, dim]. Without a cache the tokens are positions
    // 0 .. tokens-1; with one they continue it (and are appended to it). Token ids outside the
    // vocabulary throw data_error.
    std::vector<float> forward(const std::int64_t* ids, std::size_t batch, std::size_t tokens,
                               const ForwardOptions& options = {}, KVCache* cache = nullptr) const;

    // logits[r, v] = hidden[r] . classifier[v] for `rows` hidden states: [rows, vocab].
    void logits(const float* hidden, std::size_t rows, float* out) const;

  private:
    LlamaConfig config_;
    Schedule schedule_;
    std::optional<Schedule> local_;
    LlamaWeights weights_;
    std::shared_ptr<const void> storage_;
    std::string name_;
};

// The scale of attention logits, and the window of a layer (0: none), of a config.
double attention_scale(const LlamaConfig& config);
std::size_t layer_window(const LlamaConfig& config, std::size_t layer);
// v <- cap * tanh(v / cap) for n values (cap > 0; -inf stays -inf).
void soft_cap(float* v, std::size_t n, float cap);

// Throws data_error(source, where, ...) when the shapes cannot describe a working model
// (n_kv_heads not dividing n_heads, odd head_dim, zero sizes).
void validate_config(const LlamaConfig& config, const std::string& source,
                     const std::string& where = "");

}  // namespace ropekit
