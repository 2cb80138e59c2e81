// gpt_neox's own names for its RoPE keys (rotary_pct, rotary_emb_base), read as transformers'
// GPTNeoXConfig reads them (v4: configuration_gpt_neox.py's __init__; v5: its
// convert_rope_params_to_dict).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/rope/hf_rope.hpp"

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

// config[key] as a number, or `fallback` when absent or null.
Json number_or(const Json& config, const std::string& key, double fallback,
               const std::string& file) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_number()) {
        throw data_error(file, key, fmt::format("expected a number, found {}", config[key].dump()));
    }
    return config[key];
}

}  // namespace

Json hf_standard_rope_keys(const Json& config, const std::string& file) {
    if (!config.is_object() || config.value("model_type", std::string()) != "gpt_neox") {
        return config;
    }
    Json out = config;
    const Json pct = number_or(config, "rotary_pct", 0.25, file);
    const Json base = number_or(config, "rotary_emb_base", 10000.0, file);
    if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) {
        Json& dict = out["rope_parameters"];
        if (!dict.contains("partial_rotary_factor")) dict["partial_rotary_factor"] = pct;
        if (!dict.contains("rope_theta")) dict["rope_theta"] = base;
    } else {
        out["partial_rotary_factor"] = pct;
        out["rope_theta"] = base;
    }
    return out;
}

}  // namespace ropekit
