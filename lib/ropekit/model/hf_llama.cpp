#include "ropekit/model/hf_llama.hpp"

#include <filesystem>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/safetensors.hpp"
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

void require_llama(const Json& config, const std::string& file) {
    const std::string type = config.value("model_type", std::string());
    if (type != "llama") {
        throw data_error(file, "model_type",
                         fmt::format("expected \"llama\" (the only architecture rope-dump runs), "
                                     "found \"{}\"",
                                     type));
    }
    const std::string act = config.value("hidden_act", std::string("silu"));
    if (act != "silu") {
        throw data_error(file, "hidden_act", fmt::format("expected \"silu\", found \"{}\"", act));
    }
    for (const char* key : {"attention_bias", "mlp_bias"}) {
        if (flag_key(config, key)) throw data_error(file, key, "biases are not supported");
    }
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
    c.norm_eps = config.value("rms_norm_eps", 1e-6);
    c.shared_classifier = flag_key(config, "tie_word_embeddings");
    return c;
}

// The one RoPE schedule every layer uses.
const HfRopeParameters& global_rope(const HfRopeConfig& rope, const std::string& file) {
    if (rope.per_layer()) {
        throw data_error(file, "rope_parameters",
                         "expected one RoPE schedule for all layers (per-layer-type schedules are "
                         "not supported for Llama)");
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

    // The vector `name` of `size` entries, as float32 owned by the storage.
    const float* vector(const std::string& name, std::size_t size) {
        const SafetensorsFile& file = find(name, {size});
        return storage_.norms.emplace_back(file.read_float(name)).ptr();
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

LlamaLayerWeights load_layer(ShardedTensors& tensors, const LlamaConfig& c, std::size_t layer) {
    const std::size_t qdim = c.n_heads * c.head_dim, kvdim = c.n_kv_heads * c.head_dim;
    const std::string p = fmt::format("model.layers.{}.", layer);
    LlamaLayerWeights w;
    w.rms_att = tensors.vector(p + "input_layernorm.weight", c.dim);
    w.wq = tensors.projection(p + "self_attn.q_proj.weight", qdim, c.dim);
    w.wk = tensors.projection(p + "self_attn.k_proj.weight", kvdim, c.dim);
    w.wv = tensors.projection(p + "self_attn.v_proj.weight", kvdim, c.dim);
    w.wo = tensors.projection(p + "self_attn.o_proj.weight", c.dim, qdim);
    w.rms_ffn = tensors.vector(p + "post_attention_layernorm.weight", c.dim);
    w.w1 = tensors.projection(p + "mlp.gate_proj.weight", c.hidden_dim, c.dim);
    w.w2 = tensors.projection(p + "mlp.down_proj.weight", c.dim, c.hidden_dim);
    w.w3 = tensors.projection(p + "mlp.up_proj.weight", c.hidden_dim, c.dim);
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

LlamaWeights load_weights(ShardedTensors& tensors, const LlamaConfig& c,
                          const std::string& directory) {
    LlamaWeights w;
    w.token_embedding = tensors.matrix("model.embed_tokens.weight", c.vocab_size, c.dim);
    for (std::size_t l = 0; l < c.n_layers; ++l) w.layers.push_back(load_layer(tensors, c, l));
    w.rms_final = tensors.vector("model.norm.weight", c.dim);
    w.classifier = load_classifier(tensors, c, directory, w.token_embedding);
    return w;
}

// The directory's own name ("model" for "path/model" and "path/model/").
std::string model_name(const fs::path& dir) {
    std::string name = dir.filename().string();
    if (name.empty()) name = dir.parent_path().filename().string();
    return name;
}

}  // namespace

LlamaModel load_hf_llama(const std::string& directory) {
    const fs::path dir(directory);
    const std::string config_file = (dir / "config.json").string();
    if (!fs::exists(config_file)) {
        throw data_error(directory, "", "expected a config.json in the model directory");
    }
    const Json config = read_json_file(config_file);
    require_llama(config, config_file);
    LlamaConfig c = read_llama_config(config, config_file);
    const HfRopeConfig rope = parse_hf_rope_config(config, config_file);
    const HfRopeParameters& rope_parameters = global_rope(rope, config_file);
    Schedule schedule = hf_schedule(rope_parameters);
    c.head_dim = schedule.head_dim;
    c.rope_theta = rope_parameters.theta;
    validate_config(c, config_file);

    auto storage = std::make_shared<HfStorage>();
    storage->files = open_shards(dir);
    ShardedTensors tensors(directory, *storage);
    LlamaWeights weights = load_weights(tensors, c, directory);
    return LlamaModel(c, std::move(schedule), std::move(weights), std::move(storage),
                      model_name(dir));
}

}  // namespace ropekit
