#pragma once
// The RoPE frequency schedule a Hugging Face config.json describes, computed with transformers'
// formulas (modeling_rope_utils.py) for rope types default, linear, dynamic, yarn, longrope,
// llama3 and proportional (docs/formats.md, "Hugging Face config.json").
//
// Two config styles exist, and transformers v4 and v5 resolve a few parameters differently:
//   v4: top-level rope_theta / partial_rotary_factor, optional "rope_scaling" {type|rope_type,..}
//   v5: "rope_parameters" {rope_type, rope_theta, ...}, possibly one dict per layer type
//       ({"full_attention": {...}, "sliding_attention": {...}} with a "layer_types" list).
// A config is read with the rules of the version its style belongs to (see resolve notes in
// hf_rope.cpp); where both agree, that is simply transformers' behaviour.
// Frequencies are computed in double; transformers computes them in float32 (relative
// difference below 1e-7).
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ropekit/rope/rope.hpp"

namespace ropekit {

enum class HfStyle {
    plain,            // no rope dict: default RoPE from top-level rope_theta
    rope_scaling,     // v4 "rope_scaling"
    rope_parameters,  // v5 "rope_parameters"
};

// One resolved parameter set: everything transformers' init function for this type reads.
struct HfRopeParameters {
    std::string rope_type = "default";  // default linear dynamic yarn longrope llama3 proportional
    double theta = 10000.0;
    std::size_t head_dim = 0;                 // head_dim, or hidden_size / num_attention_heads
    double partial_rotary_factor = 1.0;       // as written (1 when absent)
    std::size_t rotary_dim = 0;               // int(head_dim * partial_rotary_factor)
    std::optional<double> factor;             // resolved as the init function sees it
    std::optional<double> attention_factor;   // explicit value only; computed one is in Schedule
    std::size_t max_position_embeddings = 0;  // 0 when the config has none
    std::optional<std::size_t> original_max_position_embeddings;  // resolved
    // yarn
    double beta_fast = 32.0, beta_slow = 1.0;
    std::optional<double> mscale, mscale_all_dim;
    bool truncate = true;
    // llama3
    double low_freq_factor = 0.0, high_freq_factor = 0.0;
    // longrope
    std::vector<double> short_factor, long_factor;
};

struct HfRopeConfig {
    std::string file;  // for messages
    HfStyle style = HfStyle::plain;
    // One entry ("", params) for a global schedule, or one per layer type (v5 per-layer dicts).
    std::vector<std::pair<std::string, HfRopeParameters>> by_layer_type;
    // config "layer_types" (one entry per layer) when present.
    std::vector<std::string> layer_types;

    bool per_layer() const {
        return by_layer_type.size() > 1 || !by_layer_type.front().first.empty();
    }
    const HfRopeParameters& global() const { return by_layer_type.front().second; }
};

// gpt_neox names its RoPE keys rotary_pct and rotary_emb_base; the config with them as the
// partial_rotary_factor and rope_theta transformers reads (other model_types unchanged):
//  - without rope_parameters (v4's GPTNeoXConfig): rotary_pct and rotary_emb_base, 0.25 and
//    10000 when absent, replace any top-level partial_rotary_factor and rope_theta;
//  - with rope_parameters (v5): the dict's own, else rotary_pct and rotary_emb_base, else 0.25
//    and 10000 (v5's setdefault).
// parse_hf_rope_config applies it first. data_error names rotary_pct / rotary_emb_base when they
// are not numbers.
nlohmann::ordered_json hf_standard_rope_keys(const nlohmann::ordered_json& config,
                                             const std::string& file);

// Parses and validates; throws data_error(file, key, what) for anything transformers would
// reject or compute nonsense from (missing head_dim and hidden_size, odd dims, unknown
// rope_type, missing required keys, factor lists of the wrong length, non-numbers).
HfRopeConfig parse_hf_rope_config(const nlohmann::ordered_json& config, const std::string& file);
// Reads and parses a config.json file.
HfRopeConfig read_hf_rope_config(const std::string& path);

// The schedule transformers would use (layout half, rotary_dim/2 frequencies, attention factor).
// seq_len matters for dynamic (NTK base grows past max_position_embeddings) and longrope
// (long_factor past original_max_position_embeddings); nullopt = at initialisation.
Schedule hf_schedule(const HfRopeParameters& params, std::optional<double> seq_len = std::nullopt);

// How many frequencies rope_type "proportional" keeps: int(p * head_dim // 2), evaluated with
// Python's float semantics (p * head_dim rounded to double, then floor-divided by 2).
std::size_t hf_proportional_kept(double p, std::size_t head_dim);

// transformers' rope types, for messages and option checks.
const std::vector<std::string>& hf_rope_types();

}  // namespace ropekit
