#include "ropekit/model/llama_model.hpp"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/model/decoder_layer_internal.hpp"

namespace ropekit {

void validate_config(const LlamaConfig& c, const std::string& source, const std::string& where) {
    auto fail = [&](const std::string& what) { return data_error(source, where, what); };
    if (c.dim == 0 || c.hidden_dim == 0 || c.n_layers == 0 || c.n_heads == 0 || c.n_kv_heads == 0 ||
        c.vocab_size == 0 || c.head_dim == 0) {
        throw fail("expected positive dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size");
    }
    if (c.n_heads % c.n_kv_heads != 0) {
        throw fail(fmt::format("expected n_kv_heads ({}) to divide n_heads ({})", c.n_kv_heads,
                               c.n_heads));
    }
    if (c.head_dim % 2 != 0) {
        throw fail(fmt::format("expected an even head dimension for RoPE, found {}", c.head_dim));
    }
}

double attention_scale(const LlamaConfig& c) {
    return c.attention_scale > 0 ? c.attention_scale
                                 : 1.0 / std::sqrt(static_cast<double>(c.head_dim));
}

std::size_t layer_window(const LlamaConfig& c, std::size_t layer) {
    if (c.sliding_layers.empty()) return c.sliding_window;
    return c.sliding_layers.at(layer) ? c.sliding_window : 0;
}

void soft_cap(float* v, std::size_t n, float cap) {
    for (std::size_t i = 0; i < n; ++i) {
        if (std::isfinite(v[i])) v[i] = cap * std::tanh(v[i] / cap);
    }
}

KVCache::KVCache(const LlamaConfig& config, std::size_t batch, std::size_t capacity)
    : batch_(batch), capacity_(capacity), row_(config.n_kv_heads * config.head_dim) {
    keys_.assign(config.n_layers, std::vector<float>(batch * capacity * row_));
    values_.assign(config.n_layers, std::vector<float>(batch * capacity * row_));
}

LlamaModel::LlamaModel(LlamaConfig config, Schedule schedule, LlamaWeights weights,
                       std::shared_ptr<const void> storage, std::string name)
    : config_(config),
      schedule_(std::move(schedule)),
      weights_(std::move(weights)),
      storage_(std::move(storage)),
      name_(std::move(name)) {}

bool LlamaModel::uses_local_schedule(std::size_t layer) const {
    return local_.has_value() && layer_window(config_, layer) > 0;
}

void LlamaModel::set_local_schedule(Schedule local) {
    if (local.head_dim != schedule_.head_dim) {
        throw std::invalid_argument("the local RoPE schedule has another head_dim");
    }
    local_ = std::move(local);
}

void LlamaModel::logits(const float* hidden, std::size_t rows, float* out) const {
    project(hidden, rows, weights_.classifier, out);
    if (config_.final_softcap > 0) soft_cap(out, rows * config_.vocab_size, config_.final_softcap);
}

std::vector<float> LlamaModel::forward(const std::int64_t* ids, std::size_t batch,
                                       std::size_t tokens, const ForwardOptions& options,
                                       KVCache* cache) const {
    const LlamaConfig& c = config_;
    const Schedule& schedule = options.schedule ? *options.schedule : schedule_;
    const Schedule* local = options.local_schedule ? options.local_schedule : local_schedule();
    for (const Schedule* s : {&schedule, local}) {
        if (s && s->head_dim != c.head_dim) {
            throw usage_error(fmt::format("RoPE schedule is for head_dim {}, the model has {}",
                                          s->head_dim, c.head_dim));
        }
    }
    const decoder::ForwardShape shape{batch, tokens, cache ? cache->length_ : 0};
    if (c.max_tokens > 0 && shape.keys() > c.max_tokens) {
        throw usage_error(
            fmt::format("{} tokens: this {} schedule covers at most {} (longer "
                        "inputs need its long_factor, which is not implemented)",
                        shape.keys(), c.rope_scaling, c.max_tokens));
    }
    if (cache && (cache->batch_ != batch || shape.keys() > cache->capacity_)) {
        throw std::invalid_argument("KV cache too small for this forward call");
    }
    const auto scale = static_cast<float>(attention_scale(c));
    decoder::ForwardWorkspace ws(c, shape, options);
    decoder::embed_tokens(ids, c, weights_.token_embedding, ws.x);
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        const Schedule* own = local && uses_local_schedule(l) ? local : &schedule;
        decoder::DecoderLayer layer{
            l, &weights_.layers[l], own, scale, layer_window(c, l), c.attn_softcap, {}};
        if (cache) {
            layer.cache = {cache->keys_[l].data(), cache->values_[l].data(), cache->capacity_};
        }
        if (c.gelu_mlp) {
            decoder::neox_layer(c, layer, options, ws);
        } else {
            decoder::attention_block(c, layer, options, ws);
            decoder::feed_forward_block(c, *layer.weights, ws);
        }
    }
    if (cache) cache->length_ = shape.keys();
    decoder::normalize(c, ws.x.data(), weights_.rms_final, weights_.final_norm_bias, shape.rows(),
                       ws.xb.data());
    return std::move(ws.xb);
}

void split_fused_projections(const WeightMatrix& qkv, const WeightMatrix& gate_up,
                             const LlamaConfig& c, LlamaLayerWeights& w) {
    const std::size_t qdim = c.n_heads * c.head_dim, kvdim = c.n_kv_heads * c.head_dim;
    w.wq.weight = qkv.row_range(0, qdim);
    w.wk.weight = qkv.row_range(qdim, kvdim);
    w.wv.weight = qkv.row_range(qdim + kvdim, kvdim);
    w.w1.weight = gate_up.row_range(0, c.hidden_dim);
    w.w3.weight = gate_up.row_range(c.hidden_dim, c.hidden_dim);
}

}  // namespace ropekit
