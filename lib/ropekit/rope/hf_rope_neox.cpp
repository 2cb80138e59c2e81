// gpt_neox's own names for its RoPE keys (rotary_pct, rotary_emb_base), read as transformers'
// GPTNeoXConfig reads them (v4: configuration_gpt_neox.py's __init__; v5: its
// convert_rope_params_to_dict).
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/rope/hf_rope.hpp"

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

// config[key] as written (an integer stays an integer in the rewritten config), or `fallback`
// when absent or null; refused when it is not a number.
Json number_as_written(const Json& config, const std::string& key, double fallback,
                       const std::string& file) {
    const double value = number_or(config, key, fallback, file);
    if (config.contains(key) && !config[key].is_null()) return config[key];
    return value;
}

}  // namespace

Json hf_standard_rope_keys(const Json& config, const std::string& file) {
    if (string_or(config, "model_type", "", file) != "gpt_neox") {
        return config;
    }
    Json out = config;
    const Json pct = number_as_written(config, "rotary_pct", 0.25, file);
    const Json base = number_as_written(config, "rotary_emb_base", 10000.0, file);
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
