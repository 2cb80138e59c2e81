// Gemma 3's two RoPE schedules in prope-convert (prope_encoding.hpp).
#include <fmt/format.h>

#include "ropekit/convert/prope_encoding.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"

namespace ropekit {

namespace {

using Json = nlohmann::ordered_json;

// layer_types as transformers reads a Gemma 3 config: the list itself, else full_attention on
// every sliding_window_pattern-th layer (6 when absent) and sliding_attention on the others.
Json gemma3_layer_types(const Json& config, const std::string& file) {
    if (config.contains("layer_types") && config["layer_types"].is_array()) {
        return config["layer_types"];
    }
    const Json& layers = config.value("num_hidden_layers", Json());
    if (!layers.is_number_integer() || layers.get<std::int64_t>() < 1) {
        throw data_error(file, "num_hidden_layers", "expected a positive integer");
    }
    std::int64_t pattern = 6;
    if (config.contains("sliding_window_pattern") && !config["sliding_window_pattern"].is_null()) {
        const Json& v = config["sliding_window_pattern"];
        if (!v.is_number_integer() || v.get<std::int64_t>() < 1) {
            throw data_error(file, "sliding_window_pattern", "expected a positive integer");
        }
        pattern = v.get<std::int64_t>();
    }
    Json types = Json::array();
    for (std::int64_t l = 0; l < layers.get<std::int64_t>(); ++l) {
        types.push_back((l + 1) % pattern == 0 ? "full_attention" : "sliding_attention");
    }
    return types;
}

// The full_attention dict of a v4 config: rope_theta with rope_scaling's type and parameters.
Json gemma3_global_dict(const Json& config, const std::string& file) {
    Json d = Json::object();
    const Json& scaling = config.value("rope_scaling", Json());
    if (scaling.is_object()) d = scaling;
    if (d.contains("type") && !d.contains("rope_type")) d["rope_type"] = d["type"];
    d.erase("type");
    if (!d.contains("rope_type")) d["rope_type"] = "default";
    d["rope_theta"] = number_or(config, "rope_theta", 1000000.0, file);
    return d;
}

}  // namespace

Json gemma3_rope_parameters(const Json& config, const std::string& file,
                            std::vector<std::string>& notes) {
    if (!config.is_object() || string_or(config, "model_type", "", file) != "gemma3_text" ||
        config.contains("rope_parameters")) {
        return config;
    }
    Json out = config;
    out["layer_types"] = gemma3_layer_types(config, file);
    Json local = Json::object();
    local["rope_type"] = "default";
    local["rope_theta"] = number_or(config, "rope_local_base_freq", 10000.0, file);
    out["rope_parameters"] = Json::object();
    out["rope_parameters"]["full_attention"] = gemma3_global_dict(config, file);
    out["rope_parameters"]["sliding_attention"] = local;
    for (const char* key : {"rope_scaling", "rope_theta", "rope_local_base_freq"}) out.erase(key);
    notes.push_back(
        "gemma3: rope_theta, rope_scaling and rope_local_base_freq rewritten as transformers v5's "
        "per-layer-type rope_parameters (full_attention, sliding_attention) with layer_types, the "
        "only form that gives the sliding-window layers a schedule other than default RoPE at "
        "rope_local_base_freq (transformers 4.x's Gemma 3 ignores it)");
    return out;
}

}  // namespace ropekit
