#include "ropekit/convert/hf_rope_validation.hpp"

#include <fmt/format.h>

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

bool is_llama3(const Json& d) {
    if (!d.is_object()) return false;
    const auto type = d.find("rope_type") != d.end() ? d.find("rope_type") : d.find("type");
    return type != d.end() && *type == "llama3";
}

// The llama3 dicts of the config, with where each is ("rope_scaling", "rope_parameters.x").
std::vector<std::pair<std::string, const Json*>> llama3_dicts(const Json& config) {
    std::vector<std::pair<std::string, const Json*>> out;
    const auto scaling = config.find("rope_scaling");
    if (scaling != config.end() && is_llama3(*scaling)) out.push_back({"rope_scaling", &*scaling});
    const auto parameters = config.find("rope_parameters");
    if (parameters == config.end() || !parameters->is_object()) return out;
    if (is_llama3(*parameters)) out.push_back({"rope_parameters", &*parameters});
    for (const auto& [layer_type, d] : parameters->items()) {
        if (is_llama3(d)) out.push_back({"rope_parameters." + layer_type, &d});
    }
    return out;
}

bool is_float(const Json& d, const char* key) {
    return d.contains(key) && d[key].is_number_float();
}

void check_one(const std::string& where, const Json& d, bool v5, std::size_t max_positions,
               std::vector<std::string>& warnings) {
    const auto warn = [&](const std::string& what) { warnings.push_back(where + ": " + what); };
    for (const auto& [key, value] : d.items()) {
        const bool known = key == "rope_type" || key == "type" || key == "factor" ||
                           key == "original_max_position_embeddings" || key == "low_freq_factor" ||
                           key == "high_freq_factor" ||
                           // v5's _check_received_keys adds partial_rotary_factor to every
                           // rope type's optional keys (it moved into rope_parameters)
                           (v5 && (key == "rope_theta" || key == "partial_rotary_factor"));
        if (!known) warn(fmt::format("unrecognized key {}", key));
    }
    if (!is_float(d, "factor") || d["factor"].get<double>() < 1.0) {
        warn("factor must be a float >= 1");
    }
    if (!is_float(d, "low_freq_factor") || !is_float(d, "high_freq_factor")) {
        warn("low_freq_factor and high_freq_factor must be floats");
    } else if (d["high_freq_factor"].get<double>() <= d["low_freq_factor"].get<double>()) {
        warn("high_freq_factor must be greater than low_freq_factor");
    }
    const auto original = d.find("original_max_position_embeddings");
    if (original == d.end() || !original->is_number_integer()) {
        warn("original_max_position_embeddings must be an integer");
    } else if (original->get<long long>() >= static_cast<long long>(max_positions)) {
        warn(
            fmt::format("original_max_position_embeddings {} must be less than "
                        "max_position_embeddings {}",
                        original->get<long long>(), max_positions));
    }
}

}  // namespace

std::vector<std::string> llama3_load_warnings(const Json& config) {
    std::size_t max_positions = kDefaultMaxPositionEmbeddings;
    const auto max = config.find("max_position_embeddings");
    if (max != config.end() && max->is_number_integer() && max->get<long long>() > 0) {
        max_positions = max->get<std::size_t>();
    }
    std::vector<std::string> warnings;
    for (const auto& [where, d] : llama3_dicts(config)) {
        check_one(where, *d, where != "rope_scaling", max_positions, warnings);
    }
    return warnings;
}

}  // namespace ropekit
