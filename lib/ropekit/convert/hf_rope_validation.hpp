#pragma once
// The warnings transformers logs when it loads a config.json with a llama3 rope dict
// (modeling_rope_utils.py, rope_config_validation → _validate_llama3_parameters; the same rules
// in the 4.4x source, where the dict is "rope_scaling", and in the 5.x source, where it is
// "rope_parameters", possibly one per layer type, with rope_theta inside):
//   - keys other than rope_type (or type), factor, original_max_position_embeddings,
//     low_freq_factor, high_freq_factor (and rope_theta in v5): "Unrecognized keys";
//   - factor not a float >= 1; low_freq_factor or high_freq_factor not a float; high <= low;
//   - original_max_position_embeddings not an integer, or not below max_position_embeddings.
// prope-convert refuses to write a config that would trigger any of them (docs/tools/
// prope-convert.md, "Which transformers versions load each encoding").
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ropekit {

// max_position_embeddings when config.json has none: LlamaConfig's default, the smallest class
// default of the families prope-convert converts (Mistral 131072, Qwen2/3 32768, Phi-3 4096,
// Gemma 8192).
inline constexpr std::size_t kDefaultMaxPositionEmbeddings = 2048;

// One line per warning transformers would log for the llama3 dicts of `config` (empty: none).
std::vector<std::string> llama3_load_warnings(const nlohmann::ordered_json& config);

}  // namespace ropekit
