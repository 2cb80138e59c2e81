#pragma once
// Writing a p-RoPE frequency table into a Hugging Face config.json that stock loaders read
// (docs/tools/prope-convert.md). Three encodings:
//   proportional  rope_type "proportional" + partial_rotary_factor p: exact, newest transformers
//   llama3        hard cut: factor 1e30 with both cut-off wavelengths strictly between the last
//                 kept and the first dropped wavelength, so no frequency is in the smoothing band
//   longrope      identical short/long factor lists, 1 (or the input's own scale) for kept and
//                 1e30 for dropped frequencies, factor 1, attention_factor kept explicit
// Every emitted config is re-read with hf_rope (transformers' formulas) and compared with the
// intended table before anything is written (the round-trip check).
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropekit/rope/hf_rope.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

enum class PropeEncoding { proportional, llama3, longrope };
inline constexpr EnumNames<PropeEncoding, 3> kPropeEncodingNames{
    {{PropeEncoding::proportional, "proportional"},
     {PropeEncoding::llama3, "llama3"},
     {PropeEncoding::longrope, "longrope"}}};

std::string encoding_name(PropeEncoding encoding);
PropeEncoding parse_encoding(const std::string& name);  // usage_error naming --encoding

// The factor that stands for "dropped": finite in float32 (llama.cpp stores rope_freqs as F32)
// and large enough that g / factor <= 1e-20 for every g <= 1 rad/token.
inline constexpr double kDroppedFactor = 1e30;

// Round-trip tolerances: kept frequencies to 1e-6 relative, dropped ones to kDroppedTolerance
// absolute (rope.hpp).
inline constexpr double kKeptTolerance = 1e-6;

struct PropeRequest {
    double p = 1.0;
    bool reverse = false;         // remove the highest frequencies instead (paper's ablation)
    std::optional<double> theta;  // rebase the original schedule to this theta first
    PropeEncoding encoding = PropeEncoding::proportional;
};

// One layer type's tables ("" for a global schedule).
struct PropeLayerPlan {
    std::string layer_type;
    Schedule original;  // as the input config describes it (after --theta)
    Schedule target;    // apply_prope(original, p, reverse)
};

struct HfPropePlan {
    nlohmann::ordered_json config;  // the config.json to write
    std::vector<PropeLayerPlan> layers;
    std::vector<std::string> notes;  // keys removed or changed besides the rope dict
};

// Builds the converted config and runs the round-trip check. Refuses with data_error(file, key,
// ...) inputs that cannot be carried (yarn or dynamic scaling, partial rotary under
// proportional, scaled kept frequencies under llama3, ...), and with usage_error requests no
// encoding of that kind can express (--reverse with proportional or llama3).
HfPropePlan plan_hf_prope(const nlohmann::ordered_json& config, const std::string& file,
                          const PropeRequest& request);

// A gemma3_text config with v4 keys (rope_theta + rope_scaling for the global layers,
// rope_local_base_freq for the sliding-window ones) in transformers v5's per-layer-type form
// (rope_parameters.full_attention / .sliding_attention, plus layer_types), so that p-RoPE can be
// written for each layer type; a note says so. Any other config is returned unchanged.
nlohmann::ordered_json gemma3_rope_parameters(const nlohmann::ordered_json& config,
                                              const std::string& file,
                                              std::vector<std::string>& notes);

// Re-reads `emitted` with hf_rope and compares every layer type's schedule (at initialisation
// and past any long-context threshold) with the plan's targets; throws data_error naming the
// first frequency that differs, or the first warning transformers would log on loading it
// (hf_rope_validation.hpp).
void check_round_trip(const nlohmann::ordered_json& emitted, const std::string& file,
                      const std::vector<PropeLayerPlan>& layers);

// "kept 16 of 64 frequencies; lowest kept 0.0237 rad/token (wavelength 265 tokens)".
std::string describe_kept(const std::vector<double>& target_inv_freq);

}  // namespace ropekit
