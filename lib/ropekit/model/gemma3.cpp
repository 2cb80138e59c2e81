#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/formats/gguf_rope.hpp"
#include "ropekit/model/gemma3_internal.hpp"

namespace ropekit::gemma3 {

namespace {

using Json = nlohmann::ordered_json;

constexpr std::size_t kDefaultPattern = 6;  // Gemma3TextConfig's, and llama.cpp's assumption
constexpr double kDefaultLocalBase = 10000.0;
constexpr double kDefaultQueryScalar = 256.0;

// sliding_window_pattern of config.json (6 when absent or null).
std::size_t hf_pattern(const Json& config, const std::string& file) {
    if (!config.contains("sliding_window_pattern") || config["sliding_window_pattern"].is_null()) {
        return kDefaultPattern;
    }
    const Json& v = config["sliding_window_pattern"];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1) {
        throw data_error(file, "sliding_window_pattern",
                         fmt::format("expected a positive integer, found {}", v.dump()));
    }
    return static_cast<std::size_t>(v.get<std::int64_t>());
}

// A positive number of config.json, or `fallback` when absent or null.
double number_or(const Json& config, const std::string& key, double fallback,
                 const std::string& file) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_number() || !(config[key].get<double>() > 0)) {
        throw data_error(file, key,
                         fmt::format("expected a positive number, found {}", config[key].dump()));
    }
    return config[key].get<double>();
}

// The parameters of one layer type of a per-layer-type rope_parameters.
const HfRopeParameters& of_type(const HfRopeConfig& rope, const std::string& type) {
    for (const auto& [name, parameters] : rope.by_layer_type) {
        if (name == type) return parameters;
    }
    throw data_error(rope.file, "rope_parameters." + type,
                     "expected the parameters of this layer type (gemma3 has sliding_attention "
                     "and full_attention)");
}

}  // namespace

void refuse_multimodal(const Json& config, const std::string& file) {
    if (string_or(config, "model_type", "", file) != "gemma3") return;
    throw data_error(file, "model_type",
                     "\"gemma3\" is Gemma 3's multimodal checkpoint (its text model in "
                     "text_config, its weights under language_model), which rope-dump does not "
                     "read: expected the text model saved on its own (model_type \"gemma3_text\", "
                     "Gemma3ForCausalLM)");
}

void apply_hf(const Json& config, LlamaConfig& c, const std::string& file) {
    if (config.contains("use_bidirectional_attention") &&
        config["use_bidirectional_attention"] == true) {
        throw data_error(file, "use_bidirectional_attention",
                         "bidirectional attention (EmbeddingGemma) is not supported");
    }
    const double scalar = number_or(config, "query_pre_attn_scalar", kDefaultQueryScalar, file);
    c.attention_scale = 1.0 / std::sqrt(scalar);
    const bool typed = config.contains("layer_types") && config["layer_types"].is_array();
    const bool patterned =
        config.contains("sliding_window_pattern") && !config["sliding_window_pattern"].is_null();
    const std::size_t pattern = hf_pattern(config, file);
    for (std::size_t l = 0; l < c.n_layers; ++l) {
        const int from_pattern = (l + 1) % pattern != 0 ? 1 : 0;
        if (!typed) c.sliding_layers[l] = from_pattern;  // else apply_gemma2 read layer_types
        if (typed && patterned && c.sliding_layers[l] != from_pattern) {
            throw data_error(
                file, "layer_types",
                fmt::format("layer {} disagrees with sliding_window_pattern {}", l, pattern));
        }
    }
}

HfSchedules hf_schedules(const Json& config, const HfRopeConfig& rope, const std::string& file) {
    if (rope.per_layer())
        return {of_type(rope, "full_attention"), of_type(rope, "sliding_attention")};
    HfSchedules s{rope.global(), rope.global()};
    s.local.rope_type = "default";  // transformers' rotary_emb_local: rope_scaling default
    s.local.theta = number_or(config, "rope_local_base_freq", kDefaultLocalBase, file);
    s.local.factor.reset();
    s.local.attention_factor.reset();
    s.local.original_max_position_embeddings.reset();
    return s;
}

void read_gguf(const GgufFile& f, const std::string& a, LlamaConfig& c) {
    if (f.find_tensor(kGgufRopeFreqs)) {
        throw data_error(f.path(), kGgufRopeFreqs,
                         "llama.cpp's gemma3 ignores this tensor (expected none in a gemma3 file)");
    }
    c.attn_softcap = 0.0f;  // gemma3's graph has no attention soft-cap
    c.attention_scale =
        c.n_layers == 62 ? 1.0 / std::sqrt(static_cast<double>(c.dim / c.n_heads)) : 0.0;
    c.sliding_layers.assign(c.n_layers, 0);
    c.sliding_window = 0;
    c.rope_local_theta = 0.0;
    const double window = gguf_number(f, a + "attention.sliding_window", 0.0);
    if (!(window > 0)) return;  // absent or 0: llama.cpp runs every layer global
    c.sliding_window = static_cast<std::size_t>(window);
    const double pattern = gguf_number(f, a + "attention.sliding_window_pattern",
                                       static_cast<double>(kDefaultPattern));
    if (!(pattern >= 1) || pattern != std::floor(pattern)) {
        throw data_error(f.path(), a + "attention.sliding_window_pattern",
                         fmt::format("expected a positive integer, found {}", pattern));
    }
    const auto period = static_cast<std::size_t>(pattern);
    for (std::size_t l = 0; l < c.n_layers; ++l) c.sliding_layers[l] = l % period < period - 1;
    c.rope_local_theta = gguf_number(f, a + "rope.freq_base_swa", kDefaultLocalBase);
}

Schedule gguf_local_schedule(const LlamaConfig& c, const Schedule& global) {
    return make_schedule(c.head_dim, c.rope_local_theta, global.layout, global.rotary_dim);
}

}  // namespace ropekit::gemma3
