#include "ropekit/model/llama2c.hpp"

#include <cstring>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/mapped_file.hpp"

namespace ropekit {

namespace {

constexpr std::size_t kHeaderBytes = 7 * sizeof(std::int32_t);
constexpr double kLlama2cTheta = 10000.0;

// Per-layer float counts in file order.
struct Sizes {
    std::uint64_t embedding, norm, wq, wkv, wo, ffn, freq_table;
};

Sizes sizes_of(const LlamaConfig& c) {
    const std::uint64_t dim = c.dim, heads = c.n_heads, kv = c.n_kv_heads, hd = c.head_dim;
    return {c.vocab_size * dim, dim,
            dim * heads * hd,   dim * kv * hd,
            heads * hd * dim,   c.hidden_dim * dim,
            c.seq_len * hd / 2};
}

}  // namespace

LlamaConfig llama2c_config(const Llama2cHeader& h, const std::string& file) {
    // Limits far above any real Llama (405B has dim 16384, 126 layers, vocab 128256) that keep
    // every size computation below 2^63.
    struct Field {
        const char* name;
        std::int64_t value, limit;
    };
    const std::int64_t vocab =
        h.vocab_size < 0 ? -static_cast<std::int64_t>(h.vocab_size) : h.vocab_size;
    for (const Field& f :
         {Field{"dim", h.dim, 1 << 16}, Field{"hidden_dim", h.hidden_dim, 1 << 18},
          Field{"n_layers", h.n_layers, 4096}, Field{"n_heads", h.n_heads, 4096},
          Field{"n_kv_heads", h.n_kv_heads, 4096}, Field{"vocab_size", vocab, 1 << 22},
          Field{"seq_len", h.seq_len, 1 << 24}}) {
        if (f.value <= 0 || f.value > f.limit) {
            throw data_error(file, "header",
                             fmt::format("expected {} in [1, {}], found {} (not a llama2.c "
                                         "legacy checkpoint?)",
                                         f.name, f.limit, f.value));
        }
    }
    if (h.dim % h.n_heads != 0) {
        throw data_error(file, "header",
                         fmt::format("expected n_heads ({}) to divide dim ({})", h.n_heads, h.dim));
    }
    LlamaConfig c;
    c.dim = static_cast<std::size_t>(h.dim);
    c.hidden_dim = static_cast<std::size_t>(h.hidden_dim);
    c.n_layers = static_cast<std::size_t>(h.n_layers);
    c.n_heads = static_cast<std::size_t>(h.n_heads);
    c.n_kv_heads = static_cast<std::size_t>(h.n_kv_heads);
    c.head_dim = c.dim / c.n_heads;
    c.vocab_size = static_cast<std::size_t>(vocab);
    c.seq_len = static_cast<std::size_t>(h.seq_len);
    c.shared_classifier = h.vocab_size > 0;
    validate_config(c, file, "header");
    return c;
}

std::uint64_t llama2c_file_size(const LlamaConfig& c) {
    const Sizes s = sizes_of(c);
    const std::uint64_t per_layer = 2 * s.norm + s.wq + 2 * s.wkv + s.wo + 3 * s.ffn;
    std::uint64_t floats = s.embedding + c.n_layers * per_layer + s.norm + 2 * s.freq_table;
    if (!c.shared_classifier) floats += s.embedding;
    return kHeaderBytes + floats * sizeof(float);
}

LlamaModel load_llama2c(const std::string& path) {
    auto file = std::make_shared<MappedFile>(MappedFile::open(path));
    if (file->size() < kHeaderBytes) {
        throw data_error(path, "header",
                         fmt::format("expected a {}-byte llama2.c header, the file has {} bytes",
                                     kHeaderBytes, file->size()));
    }
    Llama2cHeader header{};
    std::memcpy(&header, file->data(), kHeaderBytes);
    const LlamaConfig c = llama2c_config(header, path);
    const std::uint64_t expected = llama2c_file_size(c);
    if (file->size() != expected) {
        throw data_error(
            path, "",
            fmt::format("{}: the header (dim {}, {} layers, vocab {}{}) needs {} "
                        "bytes, the file has {}",
                        file->size() < expected ? "truncated" : "trailing data", c.dim, c.n_layers,
                        c.vocab_size, c.shared_classifier ? "" : ", separate classifier", expected,
                        file->size()));
    }
    // The mapping is page-aligned and the header is 28 bytes, so the floats are aligned.
    const float* cursor = reinterpret_cast<const float*>(file->data() + kHeaderBytes);
    auto take = [&cursor](std::uint64_t n) {
        const float* p = cursor;
        cursor += n;
        return p;
    };
    const std::size_t qdim = c.n_heads * c.head_dim, kvdim = c.n_kv_heads * c.head_dim;
    const Sizes s = sizes_of(c);
    LlamaWeights w;
    w.layers.resize(c.n_layers);
    w.token_embedding = WeightMatrix::resident(take(s.embedding), c.vocab_size, c.dim);
    // Each tensor is stacked over layers: [n_layers, ...].
    auto norms = [&](const float* LlamaLayerWeights::*field) {
        const float* base = take(s.norm * c.n_layers);
        for (std::size_t l = 0; l < c.n_layers; ++l) w.layers[l].*field = base + l * s.norm;
    };
    auto matrices = [&](Projection LlamaLayerWeights::*field, std::size_t rows, std::size_t cols) {
        const float* base = take(rows * cols * c.n_layers);
        for (std::size_t l = 0; l < c.n_layers; ++l) {
            (w.layers[l].*field).weight =
                WeightMatrix::resident(base + l * rows * cols, rows, cols);
        }
    };
    norms(&LlamaLayerWeights::rms_att);
    matrices(&LlamaLayerWeights::wq, qdim, c.dim);
    matrices(&LlamaLayerWeights::wk, kvdim, c.dim);
    matrices(&LlamaLayerWeights::wv, kvdim, c.dim);
    matrices(&LlamaLayerWeights::wo, c.dim, qdim);
    norms(&LlamaLayerWeights::rms_ffn);
    matrices(&LlamaLayerWeights::w1, c.hidden_dim, c.dim);
    matrices(&LlamaLayerWeights::w2, c.dim, c.hidden_dim);
    matrices(&LlamaLayerWeights::w3, c.hidden_dim, c.dim);
    w.rms_final = take(s.norm);
    take(2 * s.freq_table);  // legacy RoPE tables: recomputed from the schedule instead
    w.classifier.weight = c.shared_classifier
                              ? w.token_embedding
                              : WeightMatrix::resident(take(s.embedding), c.vocab_size, c.dim);

    Schedule schedule = make_schedule(c.head_dim, kLlama2cTheta, Layout::interleaved);
    return LlamaModel(c, std::move(schedule), std::move(w), std::move(file),
                      std::filesystem::path(path).stem().string());
}

}  // namespace ropekit
