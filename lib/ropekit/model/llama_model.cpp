#include "ropekit/model/llama_model.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/rope/attention.hpp"

namespace ropekit {

namespace {

// y[rows, out] = x[rows, in] . w[out, in]^T + beta * y
void project(const float* x, std::size_t rows, std::size_t in, const float* w, std::size_t out,
             float* y, float beta = 0.0f) {
    ensure_blas_address_space();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                static_cast<blasint>(out), static_cast<blasint>(in), 1.0f, x,
                static_cast<blasint>(in), w, static_cast<blasint>(in), beta, y,
                static_cast<blasint>(out));
}

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

// gate <- silu(gate) * up, SwiGLU's elementwise step.
void swiglu(float* gate, const float* up, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

}  // namespace

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

void LlamaModel::logits(const float* hidden, std::size_t rows, float* out) const {
    project(hidden, rows, config_.dim, weights_.classifier, config_.vocab_size, out);
}

std::vector<float> LlamaModel::forward(const std::int64_t* ids, std::size_t batch,
                                       std::size_t tokens, const ForwardOptions& options,
                                       KVCache* cache) const {
    const LlamaConfig& c = config_;
    const Schedule& schedule = options.schedule ? *options.schedule : schedule_;
    if (schedule.head_dim != c.head_dim) {
        throw usage_error(fmt::format("RoPE schedule is for head_dim {}, the model has {}",
                                      schedule.head_dim, c.head_dim));
    }
    const std::size_t start = cache ? cache->length_ : 0, keys = start + tokens;
    if (cache && (cache->batch_ != batch || keys > cache->capacity_)) {
        throw std::invalid_argument("KV cache too small for this forward call");
    }
    const std::size_t rows = batch * tokens, D = c.head_dim, H = c.n_heads;
    const std::size_t qdim = H * D, kvdim = c.n_kv_heads * D, group = H / c.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));

    std::vector<float> x(rows * c.dim), xb(rows * c.dim);
    for (std::size_t r = 0; r < rows; ++r) {
        if (ids[r] < 0 || static_cast<std::size_t>(ids[r]) >= c.vocab_size) {
            throw data_error(
                "", "tokens",
                fmt::format("token id {} is outside the vocabulary [0, {})", ids[r], c.vocab_size));
        }
        const float* e = weights_.token_embedding + static_cast<std::size_t>(ids[r]) * c.dim;
        std::copy(e, e + c.dim, x.begin() + static_cast<std::ptrdiff_t>(r * c.dim));
    }

    const bool observed = static_cast<bool>(options.observer);
    std::vector<float> q(rows * qdim), k(rows * kvdim), v(rows * kvdim), att(rows * qdim);
    std::vector<float> q_raw, k_raw, gate(rows * c.hidden_dim), up(rows * c.hidden_dim);
    std::vector<float> scores, pattern;
    const std::size_t head_block = tokens * keys;
    if (options.keep_scores) scores.resize(batch * H * head_block);
    if (options.keep_pattern) pattern.resize(batch * H * head_block);

    for (std::size_t l = 0; l < c.n_layers; ++l) {
        const LlamaLayerWeights& w = weights_.layers[l];
        rms_norm(x.data(), w.rms_att, rows, c.dim, c.norm_eps, xb.data());
        project(xb.data(), rows, c.dim, w.wq, qdim, q.data());
        project(xb.data(), rows, c.dim, w.wk, kvdim, k.data());
        project(xb.data(), rows, c.dim, w.wv, kvdim, v.data());
        if (observed) {
            q_raw = q;
            k_raw = k;
        }
        for (std::size_t r = 0; r < rows; ++r) {
            const auto position = static_cast<double>(start + r % tokens);
            rotate(&q[r * qdim], H, D, schedule, position);  // every head: one cos/sin per chunk
            rotate(&k[r * kvdim], c.n_kv_heads, D, schedule, position);
        }
        // Keys and values of sequence b start at key_base(b), one row of kvdim per position.
        const float *key_source = k.data(), *value_source = v.data();
        std::size_t sequence_rows = tokens;
        if (cache) {
            for (std::size_t b = 0; b < batch; ++b) {
                const std::size_t at = (b * cache->capacity_ + start) * kvdim;
                std::copy_n(&k[b * tokens * kvdim], tokens * kvdim, &cache->keys_[l][at]);
                std::copy_n(&v[b * tokens * kvdim], tokens * kvdim, &cache->values_[l][at]);
            }
            key_source = cache->keys_[l].data();
            value_source = cache->values_[l].data();
            sequence_rows = cache->capacity_;
        }
        // One (sequence, head) per task. Each task's GEMMs are small, so OpenBLAS runs them on
        // the calling thread and the tasks run in parallel instead; a token-by-token decoding
        // step is too little work to be worth starting threads.
        const auto attend = [&](std::size_t begin, std::size_t end) {
            std::vector<float> scratch(head_block);
            for (std::size_t task = begin; task < end; ++task) {
                const std::size_t b = task / H, h = task % H, kv_head = h / group;
                const float* key = key_source + b * sequence_rows * kvdim + kv_head * D;
                const float* value = value_source + b * sequence_rows * kvdim + kv_head * D;
                float* probabilities =
                    options.keep_pattern ? &pattern[task * head_block] : scratch.data();
                causal_scores(&q[b * tokens * qdim + h * D], qdim, key, kvdim, tokens, keys, D,
                              scale, probabilities);
                if (options.keep_scores) {
                    std::copy_n(probabilities, head_block, &scores[task * head_block]);
                }
                causal_softmax(probabilities, tokens, keys);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(tokens),
                            static_cast<blasint>(D), static_cast<blasint>(keys), 1.0f,
                            probabilities, static_cast<blasint>(keys), value,
                            static_cast<blasint>(kvdim), 0.0f, &att[b * tokens * qdim + h * D],
                            static_cast<blasint>(qdim));
            }
        };
        {
            const SingleThreadedBlas blas;
            if (batch * H * head_block < (std::size_t{1} << 16)) {
                attend(0, batch * H);
            } else {
                parallel_for(batch * H, attend);
            }
        }
        if (observed) {
            LayerActivations a;
            a.layer = l;
            a.batch = batch;
            a.tokens = tokens;
            a.keys = keys;
            a.start = start;
            a.q = q_raw.data();
            a.k = k_raw.data();
            a.rot_q = q.data();
            a.rot_k = k.data();
            a.scores = options.keep_scores ? scores.data() : nullptr;
            a.pattern = options.keep_pattern ? pattern.data() : nullptr;
            options.observer(a);
        }
        project(att.data(), rows, qdim, w.wo, c.dim, x.data(), 1.0f);
        rms_norm(x.data(), w.rms_ffn, rows, c.dim, c.norm_eps, xb.data());
        project(xb.data(), rows, c.dim, w.w1, c.hidden_dim, gate.data());
        project(xb.data(), rows, c.dim, w.w3, c.hidden_dim, up.data());
        swiglu(gate.data(), up.data(), gate.size());
        project(gate.data(), rows, c.hidden_dim, w.w2, c.dim, x.data(), 1.0f);
    }
    if (cache) cache->length_ = keys;
    rms_norm(x.data(), weights_.rms_final, rows, c.dim, c.norm_eps, xb.data());
    return xb;
}

}  // namespace ropekit
