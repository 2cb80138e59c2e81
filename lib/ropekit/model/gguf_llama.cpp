#include "ropekit/model/gguf_llama.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/formats/gguf_rope.hpp"
#include "ropekit/model/family.hpp"
#include "ropekit/model/gemma3_internal.hpp"

namespace ropekit {

namespace {

// The types of the F32/F16/BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K files people download.
constexpr GgmlType kWeightTypes[] = {GgmlType::f32,  GgmlType::f16,  GgmlType::bf16,
                                     GgmlType::q8_0, GgmlType::q4_0, GgmlType::q4_k,
                                     GgmlType::q5_k, GgmlType::q6_k};

// The mapped file the weight matrices read, and the norm weights converted to float32.
struct GgufStorage {
    explicit GgufStorage(GgufFile f) : file(std::move(f)) {}
    GgufFile file;
    std::vector<std::vector<float>> vectors;
};

// A positive integer key, or `fallback` when absent.
std::size_t count_key(const GgufFile& f, const std::string& key,
                      std::optional<std::size_t> fallback = std::nullopt) {
    const GgufValue* v = f.find(key);
    if (!v && fallback) return *fallback;
    if (!v) throw data_error(f.path(), key, "expected this key (a positive integer)");
    const double x = v->is_number() ? v->as_double() : 0.0;
    if (!(x >= 1.0) || x > 4294967296.0 || x != std::floor(x)) {
        throw data_error(f.path(), key,
                         v->is_number() ? fmt::format("expected a positive integer, found {}", x)
                                        : "expected a positive integer");
    }
    return static_cast<std::size_t>(x);
}

// The file's family, and its key prefix ("qwen2." for general.architecture "qwen2").
const Family& require_family(const GgufFile& f, std::string& prefix) {
    const GgufValue* arch = f.find("general.architecture");
    const std::string name =
        arch && arch->type == GgufType::string ? arch->as_string() : std::string("(none)");
    const Family& family = gguf_family(name, f.path());
    prefix = name + ".";
    if (count_key(f, prefix + "expert_count", std::size_t{0}) > 0) {
        throw data_error(f.path(), prefix + "expert_count",
                         "expected a dense model (mixtures of experts are not supported)");
    }
    return family;
}

// Gemma 2 as llama.cpp runs it: soft-caps from the file, a window (4096 when absent) on every
// layer but each sliding_window_pattern-th (2), and query_pre_attn_scalar, which the file does not
// carry, as llama.cpp assumes it: dim / heads at 46 layers (27B), else head_dim.
void read_gemma2(const GgufFile& f, const std::string& a, LlamaConfig& c) {
    c.attn_softcap = static_cast<float>(gguf_number(f, a + "attn_logit_softcapping", 0.0));
    c.final_softcap = static_cast<float>(gguf_number(f, a + "final_logit_softcapping", 0.0));
    c.sliding_window = count_key(f, a + "attention.sliding_window", std::size_t{4096});
    const std::size_t period = count_key(f, a + "attention.sliding_window_pattern", std::size_t{2});
    c.sliding_layers.assign(c.n_layers, 0);
    for (std::size_t l = 0; l < c.n_layers; ++l) c.sliding_layers[l] = l % period < period - 1;
    if (c.n_layers == 46) {
        c.attention_scale = 1.0 / std::sqrt(static_cast<double>(c.dim / c.n_heads));
    }
}

// gpt_neox as llama.cpp runs it: LayerNorm, the GELU MLP, and use_parallel_residual, which it
// requires.
void read_neox(const GgufFile& f, const std::string& a, LlamaConfig& c) {
    c.layer_norm = c.gelu_mlp = true;
    const GgufValue* parallel = f.find(a + "use_parallel_residual");
    if (!parallel || parallel->type != GgufType::boolean) {
        throw data_error(f.path(), a + "use_parallel_residual", "expected this key (a bool)");
    }
    c.parallel_residual = parallel->as_double() != 0.0;
}

// The sizes the {arch}.* keys give; the vocabulary is the embedding's row count.
LlamaConfig read_config(const GgufFile& f, const Family& family, const std::string& a) {
    LlamaConfig c;
    c.family = family.gguf_arch;
    c.dim = count_key(f, a + "embedding_length");
    c.hidden_dim = count_key(f, a + "feed_forward_length");
    c.n_layers = count_key(f, a + "block_count");
    c.n_heads = count_key(f, a + "attention.head_count");
    c.n_kv_heads = count_key(f, a + "attention.head_count_kv", c.n_heads);
    c.head_dim = count_key(f, a + "attention.key_length", c.dim / c.n_heads);
    if (count_key(f, a + "attention.value_length", c.head_dim) != c.head_dim) {
        throw data_error(f.path(), a + "attention.value_length",
                         fmt::format("expected the key length {}", c.head_dim));
    }
    c.seq_len = count_key(f, a + "context_length", std::size_t{0});
    c.norm_eps = gguf_number(
        f, a + (family.neox ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"));
    const GgufTensorInfo* embedding = f.find_tensor("token_embd.weight");
    if (!embedding || embedding->dims.size() != 2) {
        throw data_error(f.path(), "token_embd.weight", "expected this tensor, [vocab, dim]");
    }
    c.vocab_size = static_cast<std::size_t>(embedding->dims[1]);
    if (count_key(f, a + "vocab_size", c.vocab_size) != c.vocab_size) {
        throw data_error(f.path(), a + "vocab_size",
                         fmt::format("expected the {} rows of token_embd.weight", c.vocab_size));
    }
    c.shared_classifier = f.find_tensor("output.weight") == nullptr;
    if (family.sliding_window) {
        c.sliding_window = count_key(f, a + "attention.sliding_window", std::size_t{0});
    }
    if (family.gemma) {  // the converter stored Gemma's norm weights as 1 + w already
        c.embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(c.dim)));
        c.geglu = true;
    }
    if (family.gemma2) read_gemma2(f, a, c);
    if (family.gemma3) gemma3::read_gguf(f, a, c);
    if (family.neox) read_neox(f, a, c);
    validate_config(c, f.path());
    return c;
}

// llama.cpp's schedule of the file, on adjacent pairs (its "normal" rope: llama, whose q/k rows
// the converter permutes) or on halves (NEOX: the others), with the dropped frequencies of a
// p-RoPE file exactly 0, Phi-3's short longrope factors and the attention factor.
Schedule read_schedule(const GgufFile& f, const Family& family, const std::string& a,
                       LlamaConfig& c) {
    const GgufRope rope = read_gguf_rope(f);
    if (!(rope.base > 1.0)) {
        throw data_error(f.path(), a + "rope.freq_base",
                         fmt::format("expected a base above 1, found {}", rope.base));
    }
    if (rope.n_rot > c.head_dim) {
        throw data_error(f.path(), a + "rope.dimension_count",
                         fmt::format("expected at most the head dimension {}, found {}", c.head_dim,
                                     rope.n_rot));
    }
    c.rope_theta = rope.base;
    if (rope.freq_scale != 1.0) c.rope_scaling = "linear";
    if (f.find_tensor(kGgufRopeFreqs)) c.rope_scaling = "rope_freqs";
    if (!rope.short_factors.empty()) c.rope_scaling = "longrope";
    // llama.cpp divides by the long factors at every position once its context exceeds the
    // original one: inputs that long are refused, as for a Hugging Face longrope model.
    if (rope.long_factors != rope.short_factors) c.max_tokens = rope.original_context;
    Schedule schedule = make_schedule(c.head_dim, rope.base, family.gguf_layout, rope.n_rot);
    schedule.inv_freq = snap_dropped(rope.inv_freq);
    schedule.attention_factor = rope.attention_factor;
    return schedule;
}

// The tensors by name: matrices stay in the mapping (F32 ones used in place, the others
// converted a block of rows at a time), norm weights are converted into the storage.
class GgufTensors {
  public:
    explicit GgufTensors(GgufStorage& storage) : storage_(storage) {}

    WeightMatrix matrix(const std::string& name, std::size_t rows, std::size_t cols) const {
        const GgufTensorInfo& t = find(name, {cols, rows});
        const std::uint8_t* bytes = storage_.file.bytes(t);
        if (t.type == static_cast<std::uint32_t>(GgmlType::f32) &&
            reinterpret_cast<std::uintptr_t>(bytes) % alignof(float) == 0) {
            return WeightMatrix::resident(reinterpret_cast<const float*>(bytes), rows, cols);
        }
        return WeightMatrix::stored(bytes, t.type, rows, cols, WeightMatrix::Pages::release);
    }
    Projection projection(const std::string& name, std::size_t rows, std::size_t cols) const {
        return {matrix(name, rows, cols), nullptr};
    }
    const float* vector(const std::string& name, std::size_t size) {
        find(name, {size});
        return storage_.vectors.emplace_back(storage_.file.read_float(name)).data();
    }

  private:
    // The tensor `name` with these ggml dims (innermost first) in a weight type.
    const GgufTensorInfo& find(const std::string& name,
                               const std::vector<std::uint64_t>& dims) const {
        const GgufFile& f = storage_.file;
        const GgufTensorInfo* t = f.find_tensor(name);
        if (!t) throw data_error(f.path(), name, "expected this tensor");
        const auto type = static_cast<GgmlType>(t->type);
        if (std::find(std::begin(kWeightTypes), std::end(kWeightTypes), type) ==
            std::end(kWeightTypes)) {
            throw data_error(f.path(), name,
                             fmt::format("{} tensors are not supported (expected F32, F16, BF16, "
                                         "Q8_0, Q4_0, Q4_K, Q5_K or Q6_K)",
                                         ggml_type_name(t->type)));
        }
        if (t->dims != dims) {
            throw data_error(f.path(), name,
                             fmt::format("expected ggml dims [{}] from the metadata, found [{}]",
                                         fmt::join(dims, ", "), fmt::join(t->dims, ", ")));
        }
        require_dequantizable(f, *t);
        return *t;
    }

    GgufStorage& storage_;
};

// q, k, v and the SwiGLU gate and up projections: phi3's fused attn_qkv and ffn_up ([gate; up]
// rows), or the separate matrices.
void load_projections(GgufTensors& tensors, const LlamaConfig& c, const Family& family,
                      const std::string& p, LlamaLayerWeights& w) {
    const std::size_t qdim = c.n_heads * c.head_dim, kvdim = c.n_kv_heads * c.head_dim;
    if (family.fused) {
        split_fused_projections(tensors.matrix(p + "attn_qkv.weight", qdim + 2 * kvdim, c.dim),
                                tensors.matrix(p + "ffn_up.weight", 2 * c.hidden_dim, c.dim), c, w);
        return;
    }
    w.wq = tensors.projection(p + "attn_q.weight", qdim, c.dim);
    w.wk = tensors.projection(p + "attn_k.weight", kvdim, c.dim);
    w.wv = tensors.projection(p + "attn_v.weight", kvdim, c.dim);
    w.w1 = tensors.projection(p + "ffn_gate.weight", c.hidden_dim, c.dim);
    w.w3 = tensors.projection(p + "ffn_up.weight", c.hidden_dim, c.dim);
}

LlamaLayerWeights load_layer(GgufTensors& tensors, const LlamaConfig& c, const Family& family,
                             std::size_t layer) {
    const std::string p = fmt::format("blk.{}.", layer);
    LlamaLayerWeights w;
    w.rms_att = tensors.vector(p + "attn_norm.weight", c.dim);
    load_projections(tensors, c, family, p, w);
    w.wo = tensors.projection(p + "attn_output.weight", c.dim, c.n_heads * c.head_dim);
    if (family.qkv_bias) {
        w.wq.bias = tensors.vector(p + "attn_q.bias", c.n_heads * c.head_dim);
        w.wk.bias = tensors.vector(p + "attn_k.bias", c.n_kv_heads * c.head_dim);
        w.wv.bias = tensors.vector(p + "attn_v.bias", c.n_kv_heads * c.head_dim);
    }
    if (family.qk_norm) {
        w.q_norm = tensors.vector(p + "attn_q_norm.weight", c.head_dim);
        w.k_norm = tensors.vector(p + "attn_k_norm.weight", c.head_dim);
    }
    w.rms_ffn = tensors.vector(p + "ffn_norm.weight", c.dim);
    if (family.gemma2) {
        w.post_att = tensors.vector(p + "post_attention_norm.weight", c.dim);
        w.post_ffn = tensors.vector(p + "post_ffw_norm.weight", c.dim);
    }
    w.w2 = tensors.projection(p + "ffn_down.weight", c.dim, c.hidden_dim);
    return w;
}

// One gptneox layer as the converter writes it: attn_qkv with the q, k and v rows of every head
// gathered ([q; k; v], unlike Hugging Face's per-head interleaving), each tensor with a bias.
LlamaLayerWeights load_neox_layer(GgufTensors& tensors, const LlamaConfig& c, std::size_t layer) {
    const std::string p = fmt::format("blk.{}.", layer);
    const std::size_t qdim = c.n_heads * c.head_dim;
    LlamaLayerWeights w;
    w.rms_att = tensors.vector(p + "attn_norm.weight", c.dim);
    w.att_norm_bias = tensors.vector(p + "attn_norm.bias", c.dim);
    const WeightMatrix qkv = tensors.matrix(p + "attn_qkv.weight", 3 * qdim, c.dim);
    const float* qkv_bias = tensors.vector(p + "attn_qkv.bias", 3 * qdim);
    w.wq = {qkv.row_range(0, qdim), qkv_bias};
    w.wk = {qkv.row_range(qdim, qdim), qkv_bias + qdim};
    w.wv = {qkv.row_range(2 * qdim, qdim), qkv_bias + 2 * qdim};
    w.wo = {tensors.matrix(p + "attn_output.weight", c.dim, qdim),
            tensors.vector(p + "attn_output.bias", c.dim)};
    w.rms_ffn = tensors.vector(p + "ffn_norm.weight", c.dim);
    w.ffn_norm_bias = tensors.vector(p + "ffn_norm.bias", c.dim);
    w.w3 = {tensors.matrix(p + "ffn_up.weight", c.hidden_dim, c.dim),
            tensors.vector(p + "ffn_up.bias", c.hidden_dim)};
    w.w2 = {tensors.matrix(p + "ffn_down.weight", c.dim, c.hidden_dim),
            tensors.vector(p + "ffn_down.bias", c.dim)};
    return w;
}

LlamaWeights load_weights(GgufTensors& tensors, const LlamaConfig& c, const Family& family) {
    LlamaWeights w;
    w.token_embedding = tensors.matrix("token_embd.weight", c.vocab_size, c.dim);
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        w.layers.push_back(family.neox ? load_neox_layer(tensors, c, l)
                                       : load_layer(tensors, c, family, l));
    }
    w.rms_final = tensors.vector("output_norm.weight", c.dim);
    if (family.neox) w.final_norm_bias = tensors.vector("output_norm.bias", c.dim);
    w.classifier = c.shared_classifier ? Projection{w.token_embedding, nullptr}
                                       : tensors.projection("output.weight", c.vocab_size, c.dim);
    return w;
}

}  // namespace

LlamaModel load_gguf_llama(const std::string& path) {
    auto storage = std::make_shared<GgufStorage>(GgufFile::open(path));
    const GgufFile& f = storage->file;
    std::string prefix;
    const Family& family = require_family(f, prefix);
    LlamaConfig c = read_config(f, family, prefix);
    Schedule schedule = read_schedule(f, family, prefix, c);
    GgufTensors tensors(*storage);
    LlamaWeights weights = load_weights(tensors, c, family);
    std::optional<Schedule> local;
    if (c.rope_local_theta > 0) local = gemma3::gguf_local_schedule(c, schedule);
    LlamaModel model(c, std::move(schedule), std::move(weights), std::move(storage),
                     std::filesystem::path(path).stem().string());
    if (local) model.set_local_schedule(std::move(*local));
    return model;
}

}  // namespace ropekit
