#include <cblas.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/model/decoder_layer_internal.hpp"
#include "ropekit/rope/attention.hpp"
#include "ropekit/rope/exp_nonpositive.hpp"

namespace ropekit::decoder {

namespace {

// gate <- silu(gate) * up, SwiGLU's elementwise step: silu(g) = g·sigmoid(g), the sigmoid from
// e = exp(−|g|) <= 1 as 1/(1 + e) for g >= 0 and e/(1 + e) below, so that the loop vectorises
// (exp_nonpositive; the baseline and AVX2 clones round identically, as causal_softmax's).
__attribute__((target_clones("avx2", "default"))) void swiglu(float* gate, const float* up,
                                                              std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const float g = gate[i];
        const float e = exp_nonpositive(-std::fabs(g));
        // The sign bit, not g < 0: a float comparison would keep the loop from vectorising.
        const auto negative = static_cast<float>(exp_detail::bits_of(g) >> 31);
        gate[i] = g * ((1.0f - negative + negative * e) / (1.0f + e)) * up[i];
    }
}

// gate <- gelu_tanh(gate) * up, GeGLU's elementwise step (gemma; transformers'
// gelu_pytorch_tanh).
void geglu(float* gate, const float* up, std::size_t n) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    for (std::size_t i = 0; i < n; ++i) {
        const float g = gate[i];
        const float inner = kSqrt2OverPi * (g + 0.044715f * g * g * g);
        gate[i] = 0.5f * g * (1.0f + std::tanh(inner)) * up[i];
    }
}

// The keys and values attention reads: sequence b's start at b * sequence_rows rows.
struct KeyValues {
    const float* keys = nullptr;
    const float* values = nullptr;
    std::size_t sequence_rows = 0;
};

// q, k, v from the normalised residual xb.
void project_qkv(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws) {
    if (w.qkv_per_head.weight.rows() > 0) {
        project_qkv_per_head(c, w, ws);
        return;
    }
    const std::size_t rows = ws.shape.rows();
    project(ws.xb.data(), rows, w.wq, ws.q.data());
    project(ws.xb.data(), rows, w.wk, ws.k.data());
    project(ws.xb.data(), rows, w.wv, ws.v.data());
}

// RMSNorm of every head of q and of k over its head_dim (qwen3's q_norm and k_norm, applied
// before RoPE).
void normalize_heads(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws) {
    const std::size_t rows = ws.shape.rows();
    rms_norm(ws.q.data(), w.q_norm, rows * c.n_heads, c.head_dim, c.norm_eps, ws.q.data());
    rms_norm(ws.k.data(), w.k_norm, rows * c.n_kv_heads, c.head_dim, c.norm_eps, ws.k.data());
}

// Masks the keys a sliding window hides: query row i (at position keys - tokens + i) sees the
// `window` positions ending at its own (transformers' q - k < sliding_window).
void mask_outside_window(float* scores, std::size_t tokens, std::size_t keys, std::size_t window) {
    if (window == 0) return;
    for (std::size_t i = 0; i < tokens; ++i) {
        const std::size_t position = keys - tokens + i;
        if (position < window) continue;
        std::fill_n(scores + i * keys, position - window + 1, -INFINITY);
    }
}

// Rotates every head of q and k by its row's position (one cos/sin per chunk for all heads).
void rotate_qk(const LlamaConfig& c, const Schedule& schedule, ForwardWorkspace& ws) {
    const ForwardShape& shape = ws.shape;
    for (std::size_t r = 0; r < shape.rows(); ++r) {
        const auto position = static_cast<double>(shape.start + r % shape.tokens);
        rotate(&ws.q[r * ws.qdim], c.n_heads, c.head_dim, schedule, position);
        rotate(&ws.k[r * ws.kvdim], c.n_kv_heads, c.head_dim, schedule, position);
    }
}

// Appends this call's keys and values to the layer's cache, if any, and says where attention
// reads them: the cache, or k and v themselves.
KeyValues store_keys_values(const LayerCache& cache, const ForwardWorkspace& ws) {
    const ForwardShape& shape = ws.shape;
    if (!cache.keys) return {ws.k.data(), ws.v.data(), shape.tokens};
    const std::size_t block = shape.tokens * ws.kvdim;
    for (std::size_t b = 0; b < shape.batch; ++b) {
        const std::size_t at = (b * cache.capacity + shape.start) * ws.kvdim;
        std::copy_n(&ws.k[b * block], block, cache.keys + at);
        std::copy_n(&ws.v[b * block], block, cache.values + at);
    }
    return {cache.keys, cache.values, cache.capacity};
}

// Attention of the (sequence, head) tasks [begin, end): scores, causal softmax, and the
// pattern-weighted sum of values into att.
void attend_heads(const LlamaConfig& c, const DecoderLayer& layer, const KeyValues& kv,
                  const ForwardOptions& options, ForwardWorkspace& ws, std::size_t begin,
                  std::size_t end) {
    const std::size_t H = c.n_heads, D = c.head_dim, group = H / c.n_kv_heads;
    const std::size_t tokens = ws.shape.tokens, keys = ws.shape.keys(), block = ws.head_block();
    const std::size_t qdim = ws.qdim, kvdim = ws.kvdim;
    std::vector<float> scratch(block);
    for (std::size_t task = begin; task < end; ++task) {
        const std::size_t b = task / H, h = task % H, kv_head = h / group;
        const float* key = kv.keys + b * kv.sequence_rows * kvdim + kv_head * D;
        const float* value = kv.values + b * kv.sequence_rows * kvdim + kv_head * D;
        float* probabilities = options.keep_pattern ? &ws.pattern[task * block] : scratch.data();
        causal_scores(&ws.q[b * tokens * qdim + h * D], qdim, key, kvdim, tokens, keys, D,
                      layer.attention_scale, probabilities);
        if (layer.softcap > 0) soft_cap(probabilities, block, layer.softcap);
        mask_outside_window(probabilities, tokens, keys, layer.sliding_window);
        if (options.keep_scores) std::copy_n(probabilities, block, &ws.scores[task * block]);
        causal_softmax(probabilities, tokens, keys);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(tokens),
                    static_cast<blasint>(D), static_cast<blasint>(keys), 1.0f, probabilities,
                    static_cast<blasint>(keys), value, static_cast<blasint>(kvdim), 0.0f,
                    &ws.att[b * tokens * qdim + h * D], static_cast<blasint>(qdim));
    }
}

// One (sequence, head) per task. Each task's GEMMs are small, so OpenBLAS runs them on the
// calling thread and the tasks run in parallel instead; a token-by-token decoding step is too
// little work to be worth starting threads.
void attend(const LlamaConfig& c, const DecoderLayer& layer, const KeyValues& kv,
            const ForwardOptions& options, ForwardWorkspace& ws) {
    use_single_threaded_blas();
    const std::size_t tasks = ws.shape.batch * c.n_heads;
    if (tasks * ws.head_block() < (std::size_t{1} << 16)) {
        attend_heads(c, layer, kv, options, ws, 0, tasks);
    } else {
        parallel_for(tasks, [&](std::size_t begin, std::size_t end) {
            attend_heads(c, layer, kv, options, ws, begin, end);
        });
    }
}

// x += projection(in), or with gemma2's post-norm x += rms_norm(projection(in)) (xb is free
// by then).
void add_output(const LlamaConfig& c, const float* in, const Projection& p, const float* post_norm,
                ForwardWorkspace& ws) {
    const std::size_t rows = ws.shape.rows();
    if (!post_norm) {
        project(in, rows, p, ws.x.data(), 1.0f);
        return;
    }
    project(in, rows, p, ws.xb.data());
    rms_norm(ws.xb.data(), post_norm, rows, c.dim, c.norm_eps, ws.xb.data());
    for (std::size_t i = 0; i < ws.x.size(); ++i) ws.x[i] += ws.xb[i];
}

// What the observer is shown of the layer that just ran attention.
LayerActivations layer_activations(std::size_t layer, const ForwardWorkspace& ws,
                                   const ForwardOptions& options) {
    LayerActivations a;
    a.layer = layer;
    a.batch = ws.shape.batch;
    a.tokens = ws.shape.tokens;
    a.keys = ws.shape.keys();
    a.start = ws.shape.start;
    a.q = ws.q_raw.data();
    a.k = ws.k_raw.data();
    a.rot_q = ws.q.data();
    a.rot_k = ws.k.data();
    a.scores = options.keep_scores ? ws.scores.data() : nullptr;
    a.pattern = options.keep_pattern ? ws.pattern.data() : nullptr;
    return a;
}

}  // namespace

void rms_norm(const float* x, const float* weight, std::size_t rows, std::size_t dim, double eps,
              float* out) {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = x + r * dim;
        double squares = 0.0;
        for (std::size_t i = 0; i < dim; ++i) squares += static_cast<double>(row[i]) * row[i];
        const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(dim) + eps);
        for (std::size_t i = 0; i < dim; ++i) {
            out[r * dim + i] = static_cast<float>(weight[i] * (inverse * row[i]));
        }
    }
}

void embed_tokens(const std::int64_t* ids, const LlamaConfig& c, const WeightMatrix& embedding,
                  std::vector<float>& x) {
    for (std::size_t r = 0; r < x.size() / c.dim; ++r) {
        if (ids[r] < 0 || static_cast<std::size_t>(ids[r]) >= c.vocab_size) {
            throw data_error(
                "", "tokens",
                fmt::format("token id {} is outside the vocabulary [0, {})", ids[r], c.vocab_size));
        }
        embedding.read_rows(static_cast<std::size_t>(ids[r]), 1, &x[r * c.dim]);
        if (c.embedding_scale != 1.0f) {
            for (std::size_t i = 0; i < c.dim; ++i) x[r * c.dim + i] *= c.embedding_scale;
        }
    }
}

void attention_block(const LlamaConfig& c, const DecoderLayer& layer, const ForwardOptions& options,
                     ForwardWorkspace& ws) {
    const LlamaLayerWeights& w = *layer.weights;
    const std::size_t rows = ws.shape.rows();
    normalize(c, ws.x.data(), w.rms_att, w.att_norm_bias, rows, ws.xb.data());
    project_qkv(c, w, ws);
    if (w.q_norm) normalize_heads(c, w, ws);
    if (options.observer) {
        ws.q_raw = ws.q;
        ws.k_raw = ws.k;
    }
    rotate_qk(c, *layer.schedule, ws);
    const KeyValues kv = store_keys_values(layer.cache, ws);
    attend(c, layer, kv, options, ws);
    if (options.observer) options.observer(layer_activations(layer.index, ws, options));
    add_output(c, ws.att.data(), w.wo, w.post_att, ws);
}

void feed_forward_block(const LlamaConfig& c, const LlamaLayerWeights& w, ForwardWorkspace& ws) {
    const std::size_t rows = ws.shape.rows();
    rms_norm(ws.x.data(), w.rms_ffn, rows, c.dim, c.norm_eps, ws.xb.data());
    project(ws.xb.data(), rows, w.w1, ws.gate.data());
    project(ws.xb.data(), rows, w.w3, ws.up.data());
    if (c.geglu) {
        geglu(ws.gate.data(), ws.up.data(), ws.gate.size());
    } else {
        swiglu(ws.gate.data(), ws.up.data(), ws.gate.size());
    }
    add_output(c, ws.gate.data(), w.w2, w.post_ffn, ws);
}

}  // namespace ropekit::decoder
