#include "ropekit/model/hf_llama.hpp"

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/safetensors.hpp"
#include "ropekit/model/family.hpp"
#include "ropekit/model/gemma3_internal.hpp"
#include "ropekit/rope/hf_rope.hpp"

namespace ropekit {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::size_t count_key(const Json& config, const std::string& file, const std::string& key,
                      std::optional<std::size_t> fallback = std::nullopt) {
    if (!config.contains(key) || config[key].is_null()) {
        if (fallback) return *fallback;
        throw data_error(file, key, "expected this key (a positive integer)");
    }
    const Json& v = config[key];
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 ||
        v.get<std::int64_t>() > (std::int64_t{1} << 32)) {
        throw data_error(file, key, fmt::format("expected a positive integer, found {}", v.dump()));
    }
    return static_cast<std::size_t>(v.get<std::int64_t>());
}

bool flag_key(const Json& config, const std::string& key) {
    return config.contains(key) && config[key].is_boolean() && config[key].get<bool>();
}

// SiLU (SwiGLU), or for gemma the tanh GELU: transformers' Gemma reads hidden_activation, and
// runs the "gelu" of the first Gemma configs as gelu_pytorch_tanh too; gpt_neox's exact GELU.
void require_activation(const Json& config, const Family& family, const std::string& file) {
    const bool newer =
        config.contains("hidden_activation") && config["hidden_activation"].is_string();
    const std::string key = newer ? "hidden_activation" : "hidden_act";
    const char* expected = family.gemma ? "gelu_pytorch_tanh" : family.neox ? "gelu" : "silu";
    const std::string act = config.value(key, std::string(expected));
    if (family.gemma ? act != "gelu_pytorch_tanh" && act != "gelu" : act != expected) {
        throw data_error(file, key, fmt::format("expected \"{}\", found \"{}\"", expected, act));
    }
}

// The family of config.json, and a refusal by name of what rope-dump does not implement.
const Family& require_family(const Json& config, const std::string& file) {
    gemma3::refuse_multimodal(config, file);
    const Family& family = hf_family(string_or(config, "model_type", "", file), file);
    require_activation(config, family, file);
    if (flag_key(config, "mlp_bias"))
        throw data_error(file, "mlp_bias", "MLP biases are not supported");
    if (flag_key(config, "use_sliding_window")) {
        throw data_error(
            file, "use_sliding_window",
            fmt::format("{}'s per-layer sliding window is not supported", family.model_type));
    }
    if (family.fused && flag_key(config, "attention_bias")) {
        throw data_error(file, "attention_bias", "biases are not supported for phi3");
    }
    return family;
}

// Gemma's embedding scale (√dim, rounded to float32 as transformers does) and GeGLU; its
// configs tie the output to the embedding unless they say otherwise (GemmaConfig's default, which
// save_pretrained leaves out).
void apply_gemma(const Json& config, LlamaConfig& c) {
    c.embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(c.dim)));
    c.geglu = true;
    c.shared_classifier =
        !config.contains("tie_word_embeddings") || flag_key(config, "tie_word_embeddings");
}

// A positive number of config.json, or 0 when absent or null.
double optional_number(const Json& config, const std::string& key, const std::string& file) {
    if (!config.contains(key) || config[key].is_null()) return 0.0;
    if (!config[key].is_number() || !(config[key].get<double>() > 0)) {
        throw data_error(file, key,
                         fmt::format("expected a positive number, found {}", config[key].dump()));
    }
    return config[key].get<double>();
}

// Gemma 2's scale (query_pre_attn_scalar^-1/2), soft-caps and the layers with a sliding
// window: those layer_types calls sliding_attention, else the even ones (transformers' default).
void apply_gemma2(const Json& config, LlamaConfig& c, const std::string& file) {
    const double scalar = optional_number(config, "query_pre_attn_scalar", file);
    c.attention_scale = scalar > 0 ? 1.0 / std::sqrt(scalar) : 0.0;
    c.attn_softcap = static_cast<float>(optional_number(config, "attn_logit_softcapping", file));
    c.final_softcap = static_cast<float>(optional_number(config, "final_logit_softcapping", file));
    c.sliding_layers.assign(c.n_layers, 0);
    const bool typed = config.contains("layer_types") && config["layer_types"].is_array();
    if (typed && config["layer_types"].size() != c.n_layers) {
        throw data_error(file, "layer_types",
                         fmt::format("expected {} entries, one per layer", c.n_layers));
    }
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        c.sliding_layers[l] = typed ? config["layer_types"][l] == "sliding_attention" : l % 2 == 0;
    }
}

// How many keys each query sees: config.json's sliding_window where the family applies it.
std::size_t sliding_window(const Json& config, const Family& family, const std::string& file) {
    if (!family.sliding_window) return 0;
    return count_key(config, file, "sliding_window", std::size_t{0});
}

// The longest input the schedule covers: dynamic grows its base, longrope switches to its long
// factors past these lengths (0: no limit).
std::size_t schedule_limit(const HfRopeParameters& p) {
    if (p.rope_type == "dynamic") return p.max_position_embeddings;
    if (p.rope_type == "longrope" && p.long_factor != p.short_factor) {
        return p.original_max_position_embeddings.value_or(0);
    }
    return 0;
}

// The mapped shards the weight matrices read, and the norm weights converted to float32.
struct HfStorage {
    std::vector<SafetensorsFile> files;
    std::vector<Tensor<float>> norms;
};

// Opens model.safetensors or the shards of model.safetensors.index.json.
std::vector<SafetensorsFile> open_shards(const fs::path& dir) {
    std::vector<SafetensorsFile> files;
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
        for (const auto& shard : read_safetensors_index(index.string()).shards) {
            files.push_back(SafetensorsFile::open((dir / shard).string()));
        }
    } else {
        const fs::path single = dir / "model.safetensors";
        if (!fs::exists(single)) {
            throw data_error(dir.string(), "",
                             "expected model.safetensors or model.safetensors.index.json");
        }
        files.push_back(SafetensorsFile::open(single.string()));
    }
    return files;
}

// The sizes config.json gives; head_dim and rope_theta come from its RoPE keys.
LlamaConfig read_llama_config(const Json& config, const std::string& file) {
    LlamaConfig c;
    c.dim = count_key(config, file, "hidden_size");
    c.hidden_dim = count_key(config, file, "intermediate_size");
    c.n_layers = count_key(config, file, "num_hidden_layers");
    c.n_heads = count_key(config, file, "num_attention_heads");
    c.n_kv_heads = count_key(config, file, "num_key_value_heads", c.n_heads);
    c.vocab_size = count_key(config, file, "vocab_size");
    c.seq_len = count_key(config, file, "max_position_embeddings", std::size_t{0});
    c.norm_eps = number_or(config, "rms_norm_eps", 1e-6, file);
    c.shared_classifier = flag_key(config, "tie_word_embeddings");
    return c;
}

// The one RoPE schedule every layer uses.
const HfRopeParameters& global_rope(const HfRopeConfig& rope, const std::string& file) {
    if (rope.per_layer()) {
        throw data_error(file, "rope_parameters",
                         "expected one RoPE schedule for all layers (per-layer-type schedules are "
                         "not supported for these families)");
    }
    return rope.global();
}

// The ggml type of a safetensors float dtype, for WeightMatrix.
std::uint32_t ggml_type_of(const std::string& dtype) {
    if (dtype == "F16") return static_cast<std::uint32_t>(GgmlType::f16);
    if (dtype == "BF16") return static_cast<std::uint32_t>(GgmlType::bf16);
    return static_cast<std::uint32_t>(GgmlType::f32);
}

// The tensors of every shard by name. Matrices stay in their mapping: F32 ones used in place,
// F16 and BF16 ones converted a block of rows at a time (weight_matrix.hpp); norm weights are
// converted to float32 into the storage.
class ShardedTensors {
  public:
    ShardedTensors(std::string directory, HfStorage& storage)
        : directory_(std::move(directory)), storage_(storage) {
        for (const auto& f : storage_.files) {
            for (const auto& t : f.tensors()) where_[t.name] = &f;
        }
    }
    bool has(const std::string& name) const { return where_.count(name) > 0; }

    // The matrix `name`, [rows, cols] in a float dtype.
    WeightMatrix matrix(const std::string& name, std::size_t rows, std::size_t cols) const {
        const SafetensorsFile& file = find(name, {rows, cols});
        const SafetensorsTensor& t = file.at(name);
        const std::uint8_t* bytes = file.bytes(t);
        if (t.dtype == "F32" && reinterpret_cast<std::uintptr_t>(bytes) % alignof(float) == 0) {
            return WeightMatrix::resident(reinterpret_cast<const float*>(bytes), rows, cols);
        }
        return WeightMatrix::stored(bytes, ggml_type_of(t.dtype), rows, cols,
                                    WeightMatrix::Pages::release);
    }
    Projection projection(const std::string& name, std::size_t rows, std::size_t cols) const {
        return {matrix(name, rows, cols), nullptr};
    }

    // The vector `name` of `size` entries plus `offset`, as float32 owned by the storage.
    const float* vector(const std::string& name, std::size_t size, float offset = 0.0f) {
        const SafetensorsFile& file = find(name, {size});
        Tensor<float>& v = storage_.norms.emplace_back(file.read_float(name));
        for (float& x : v.data) x += offset;
        return v.ptr();
    }

  private:
    // The file holding `name`, which must be a float type of this shape.
    const SafetensorsFile& find(const std::string& name, const Shape& shape) const {
        const auto it = where_.find(name);
        if (it == where_.end()) {
            throw data_error(directory_, name, "expected this tensor in the safetensors files");
        }
        const SafetensorsFile& file = *it->second;
        const SafetensorsTensor& t = file.at(name);
        if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16") {
            throw data_error(file.path(), name,
                             fmt::format("expected F32, F16 or BF16, found {}", t.dtype));
        }
        if (t.shape != shape) {
            throw data_error(file.path(), name,
                             fmt::format("expected shape {} from config.json, found {}",
                                         shape_string(shape), shape_string(t.shape)));
        }
        return file;
    }

    std::string directory_;
    std::map<std::string, const SafetensorsFile*> where_;
    HfStorage& storage_;
};

// q, k, v and the SwiGLU gate and up projections, from phi3's fused qkv_proj and gate_up_proj
// (rows in that order) or from the separate matrices.
void load_projections(ShardedTensors& tensors, const LlamaConfig& c, const Family& family,
                      const std::string& p, LlamaLayerWeights& w) {
    const std::size_t qdim = c.n_heads * c.head_dim, kvdim = c.n_kv_heads * c.head_dim;
    if (family.fused) {
        split_fused_projections(
            tensors.matrix(p + "self_attn.qkv_proj.weight", qdim + 2 * kvdim, c.dim),
            tensors.matrix(p + "mlp.gate_up_proj.weight", 2 * c.hidden_dim, c.dim), c, w);
        return;
    }
    w.wq = tensors.projection(p + "self_attn.q_proj.weight", qdim, c.dim);
    w.wk = tensors.projection(p + "self_attn.k_proj.weight", kvdim, c.dim);
    w.wv = tensors.projection(p + "self_attn.v_proj.weight", kvdim, c.dim);
    w.w1 = tensors.projection(p + "mlp.gate_proj.weight", c.hidden_dim, c.dim);
    w.w3 = tensors.projection(p + "mlp.up_proj.weight", c.hidden_dim, c.dim);
}

// The family's extra attention weights: q/k/v biases (qwen2, or attention_bias with o too),
// per-head q/k norms (qwen3).
void load_attention_extras(ShardedTensors& tensors, const LlamaConfig& c, const Family& family,
                           bool attention_bias, const std::string& p, LlamaLayerWeights& w) {
    if (family.qkv_bias || attention_bias) {
        w.wq.bias = tensors.vector(p + "self_attn.q_proj.bias", c.n_heads * c.head_dim);
        w.wk.bias = tensors.vector(p + "self_attn.k_proj.bias", c.n_kv_heads * c.head_dim);
        w.wv.bias = tensors.vector(p + "self_attn.v_proj.bias", c.n_kv_heads * c.head_dim);
    }
    if (attention_bias) w.wo.bias = tensors.vector(p + "self_attn.o_proj.bias", c.dim);
    if (family.qk_norm) {  // gemma3's are Gemma RMSNorms too: 1 + w
        const float offset = family.gemma ? 1.0f : 0.0f;
        w.q_norm = tensors.vector(p + "self_attn.q_norm.weight", c.head_dim, offset);
        w.k_norm = tensors.vector(p + "self_attn.k_norm.weight", c.head_dim, offset);
    }
}

LlamaLayerWeights load_layer(ShardedTensors& tensors, const LlamaConfig& c, const Family& family,
                             bool attention_bias, std::size_t layer) {
    const std::string p = fmt::format("model.layers.{}.", layer);
    LlamaLayerWeights w;
    const float offset = family.gemma ? 1.0f : 0.0f;  // Gemma's RMSNorm scales by 1 + w
    w.rms_att = tensors.vector(p + "input_layernorm.weight", c.dim, offset);
    load_projections(tensors, c, family, p, w);
    w.wo = tensors.projection(p + "self_attn.o_proj.weight", c.dim, c.n_heads * c.head_dim);
    load_attention_extras(tensors, c, family, attention_bias, p, w);
    if (family.gemma2) {  // norms before and after attention and the MLP
        w.post_att = tensors.vector(p + "post_attention_layernorm.weight", c.dim, offset);
        w.rms_ffn = tensors.vector(p + "pre_feedforward_layernorm.weight", c.dim, offset);
        w.post_ffn = tensors.vector(p + "post_feedforward_layernorm.weight", c.dim, offset);
    } else {
        w.rms_ffn = tensors.vector(p + "post_attention_layernorm.weight", c.dim, offset);
    }
    w.w2 = tensors.projection(p + "mlp.down_proj.weight", c.dim, c.hidden_dim);
    return w;
}

// lm_head.weight, or the embedding when config.json ties them.
Projection load_classifier(const ShardedTensors& tensors, const LlamaConfig& c,
                           const std::string& directory, const WeightMatrix& embedding) {
    if (c.shared_classifier) return {embedding, nullptr};
    if (!tensors.has("lm_head.weight")) {
        throw data_error(directory, "lm_head.weight",
                         "expected this tensor (config.json does not tie the embeddings)");
    }
    return tensors.projection("lm_head.weight", c.vocab_size, c.dim);
}

// gpt_neox's keys: LayerNorm's epsilon, use_parallel_residual (true when absent, as in
// GPTNeoXConfig); its one key/value head per query head.
void apply_neox(const Json& config, LlamaConfig& c, const std::string& file) {
    c.layer_norm = c.gelu_mlp = true;
    c.norm_eps = number_or(config, "layer_norm_eps", 1e-5, file);
    c.parallel_residual = true;
    if (config.contains("use_parallel_residual")) {
        if (!config["use_parallel_residual"].is_boolean()) {
            throw data_error(file, "use_parallel_residual", "expected true or false");
        }
        c.parallel_residual = config["use_parallel_residual"].get<bool>();
    }
    if (c.n_kv_heads != c.n_heads) {
        throw data_error(
            file, "num_key_value_heads",
            fmt::format("expected {} (gpt_neox has one per attention head)", c.n_heads));
    }
}

// A LayerNorm's weight and bias: `name`.weight and `name`.bias.
const float* layer_norm_weights(ShardedTensors& tensors, const std::string& name, std::size_t dim,
                                const float*& bias) {
    bias = tensors.vector(name + ".bias", dim);
    return tensors.vector(name + ".weight", dim);
}

// A linear layer `name` [rows, cols], with `name`.bias when `biased`.
Projection linear(ShardedTensors& tensors, const std::string& name, std::size_t rows,
                  std::size_t cols, bool biased) {
    Projection p = tensors.projection(name + ".weight", rows, cols);
    if (biased) p.bias = tensors.vector(name + ".bias", rows);
    return p;
}

// One gpt_neox layer: query_key_value stays fused, interleaved per head (the decoder splits its
// output); attention_bias (true when absent) puts biases on it and on dense.
LlamaLayerWeights load_neox_layer(ShardedTensors& tensors, const LlamaConfig& c, bool bias,
                                  std::size_t layer) {
    const std::string p = fmt::format("gpt_neox.layers.{}.", layer);
    const std::size_t qdim = c.n_heads * c.head_dim;
    LlamaLayerWeights w;
    w.rms_att = layer_norm_weights(tensors, p + "input_layernorm", c.dim, w.att_norm_bias);
    w.qkv_per_head = linear(tensors, p + "attention.query_key_value", 3 * qdim, c.dim, bias);
    w.wo = linear(tensors, p + "attention.dense", c.dim, qdim, bias);
    w.rms_ffn = layer_norm_weights(tensors, p + "post_attention_layernorm", c.dim, w.ffn_norm_bias);
    w.w3 = linear(tensors, p + "mlp.dense_h_to_4h", c.hidden_dim, c.dim, true);
    w.w2 = linear(tensors, p + "mlp.dense_4h_to_h", c.dim, c.hidden_dim, true);
    return w;
}

LlamaWeights load_neox_weights(ShardedTensors& tensors, const LlamaConfig& c, const Json& config,
                               const std::string& directory) {
    const bool bias = !config.contains("attention_bias") || flag_key(config, "attention_bias");
    LlamaWeights w;
    w.token_embedding = tensors.matrix("gpt_neox.embed_in.weight", c.vocab_size, c.dim);
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        w.layers.push_back(load_neox_layer(tensors, c, bias, l));
    }
    w.rms_final =
        layer_norm_weights(tensors, "gpt_neox.final_layer_norm", c.dim, w.final_norm_bias);
    if (c.shared_classifier) {
        w.classifier = {w.token_embedding, nullptr};
    } else if (!tensors.has("embed_out.weight")) {
        throw data_error(directory, "embed_out.weight",
                         "expected this tensor (config.json does not tie the embeddings)");
    } else {
        w.classifier = tensors.projection("embed_out.weight", c.vocab_size, c.dim);
    }
    return w;
}

LlamaWeights load_weights(ShardedTensors& tensors, const LlamaConfig& c, const Json& config,
                          const std::string& directory) {
    const Family& family = hf_family(c.family, directory);
    if (family.neox) return load_neox_weights(tensors, c, config, directory);
    const bool attention_bias = flag_key(config, "attention_bias");
    LlamaWeights w;
    w.token_embedding = tensors.matrix("model.embed_tokens.weight", c.vocab_size, c.dim);
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        w.layers.push_back(load_layer(tensors, c, family, attention_bias, l));
    }
    w.rms_final = tensors.vector("model.norm.weight", c.dim, family.gemma ? 1.0f : 0.0f);
    w.classifier = load_classifier(tensors, c, directory, w.token_embedding);
    return w;
}

// The directory's own name ("model" for "path/model" and "path/model/").
std::string model_name(const fs::path& dir) {
    std::string name = dir.filename().string();
    if (name.empty()) name = dir.parent_path().filename().string();
    return name;
}

// What config.json says: the architecture, its RoPE schedule and, for Gemma 3, its sliding layers'
// schedule.
struct HfModelConfig {
    LlamaConfig config;
    Schedule schedule;
    std::optional<Schedule> local_schedule;
};

HfModelConfig read_hf_model_config(const Json& config, const std::string& config_file) {
    const Family& family = require_family(config, config_file);
    LlamaConfig c = read_llama_config(config, config_file);
    c.family = family.model_type;
    c.sliding_window = sliding_window(config, family, config_file);
    if (family.gemma) apply_gemma(config, c);
    if (family.gemma2) apply_gemma2(config, c, config_file);
    if (family.gemma3) gemma3::apply_hf(config, c, config_file);
    if (family.neox) apply_neox(config, c, config_file);
    const HfRopeConfig rope = parse_hf_rope_config(config, config_file);
    std::optional<gemma3::HfSchedules> two;
    if (family.gemma3) two = gemma3::hf_schedules(config, rope, config_file);
    const HfRopeParameters& rope_parameters = two ? two->global : global_rope(rope, config_file);
    Schedule schedule = hf_schedule(rope_parameters);
    if (two) c.rope_local_theta = two->local.theta;
    c.head_dim = schedule.head_dim;
    c.rope_theta = rope_parameters.theta;
    c.rope_scaling = rope_parameters.rope_type;
    c.max_tokens = schedule_limit(rope_parameters);
    validate_config(c, config_file);
    std::optional<Schedule> local;
    if (two) local = hf_schedule(two->local);
    return {std::move(c), std::move(schedule), std::move(local)};
}

}  // namespace

LlamaModel load_hf_llama(const std::string& directory) {
    const fs::path dir(directory);
    const std::string config_file = (dir / "config.json").string();
    if (!fs::exists(config_file)) {
        throw data_error(directory, "", "expected a config.json in the model directory");
    }
    const Json config = read_json_file(config_file);
    HfModelConfig read =
        interpret_json(config_file, [&] { return read_hf_model_config(config, config_file); });

    auto storage = std::make_shared<HfStorage>();
    storage->files = open_shards(dir);
    ShardedTensors tensors(directory, *storage);
    LlamaWeights weights = load_weights(tensors, read.config, config, directory);
    LlamaModel model(read.config, std::move(read.schedule), std::move(weights), std::move(storage),
                     model_name(dir));
    if (read.local_schedule) model.set_local_schedule(std::move(*read.local_schedule));
    return model;
}

}  // namespace ropekit
