#include "ropekit/rope/hf_rope.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

constexpr double kPi = 3.14159265358979323846;

// Reads keys of one JSON object, naming "prefix.key" in errors. null counts as absent, as
// transformers' dict.get(...) / `or` defaults treat it.
class Keys {
  public:
    Keys(const Json& object, std::string file, std::string prefix)
        : object_(object), file_(std::move(file)), prefix_(std::move(prefix)) {}

    std::string name(const std::string& key) const {
        return prefix_.empty() ? key : prefix_ + "." + key;
    }
    bool has(const std::string& key) const {
        return object_.is_object() && object_.contains(key) && !object_.at(key).is_null();
    }
    std::optional<double> number(const std::string& key) const {
        if (!has(key)) return std::nullopt;
        const Json& v = object_.at(key);
        if (!v.is_number()) throw error(key, fmt::format("expected a number, got {}", v.dump()));
        const double x = v.get<double>();
        if (!std::isfinite(x)) throw error(key, "expected a finite number");
        return x;
    }
    double required(const std::string& key, const std::string& why) const {
        const auto v = number(key);
        if (!v) throw error(key, "missing (" + why + ")");
        return *v;
    }
    std::optional<std::size_t> count(const std::string& key) const {
        const auto v = number(key);
        if (!v) return std::nullopt;
        if (*v < 0 || std::floor(*v) != *v) {
            throw error(key, fmt::format("expected a non-negative integer, got {}", *v));
        }
        // Above 2^53 a double no longer holds every integer, and at 2^64 the conversion below
        // is undefined behaviour (found by fuzz_hf_rope).
        if (*v >= 9007199254740992.0) {
            throw error(key, fmt::format("expected a non-negative integer below 2^53, got {}", *v));
        }
        return static_cast<std::size_t>(*v);
    }
    std::optional<std::string> text(const std::string& key) const {
        if (!has(key)) return std::nullopt;
        const Json& v = object_.at(key);
        if (!v.is_string()) throw error(key, fmt::format("expected a string, got {}", v.dump()));
        return v.get<std::string>();
    }
    std::optional<bool> flag(const std::string& key) const {
        if (!has(key)) return std::nullopt;
        const Json& v = object_.at(key);
        if (!v.is_boolean())
            throw error(key, fmt::format("expected true or false, got {}", v.dump()));
        return v.get<bool>();
    }
    std::vector<double> numbers(const std::string& key, std::size_t expected) const {
        if (!has(key)) throw error(key, "missing (required by rope_type longrope)");
        const Json& v = object_.at(key);
        if (!v.is_array()) throw error(key, "expected a list of numbers");
        if (v.size() != expected) {
            throw error(key, fmt::format("expected {} entries (rotary_dim / 2), got {}", expected,
                                         v.size()));
        }
        std::vector<double> out;
        for (const Json& x : v) {
            if (!x.is_number() || !std::isfinite(x.get<double>()) || x.get<double>() <= 0) {
                throw error(key, fmt::format("expected positive numbers, got {}", x.dump()));
            }
            out.push_back(x.get<double>());
        }
        return out;
    }
    Error error(const std::string& key, const std::string& what) const {
        return data_error(file_, name(key), what);
    }

  private:
    const Json& object_;
    std::string file_;
    std::string prefix_;
};

bool known_type(const std::string& type) {
    const auto& types = hf_rope_types();
    return std::find(types.begin(), types.end(), type) != types.end();
}

// Far above any real model (256-512); a corrupt value would otherwise make hf_schedule try to
// allocate head_dim / 2 frequencies.
constexpr std::size_t kMaxHeadDim = 1 << 16;

std::size_t checked_head_dim(const Keys& top, const std::string& key, std::size_t head_dim) {
    if (head_dim > kMaxHeadDim) {
        throw top.error(key, fmt::format("head dimension {} is implausibly large (limit {})",
                                         head_dim, kMaxHeadDim));
    }
    return head_dim;
}

std::size_t resolve_head_dim(const Keys& top, const std::string& key) {
    // transformers: getattr(config, "head_dim", None) or hidden_size // num_attention_heads
    if (const auto h = top.count(key); h && *h > 0) return checked_head_dim(top, key, *h);
    const auto hidden = top.count("hidden_size");
    const auto heads = top.count("num_attention_heads");
    if (!hidden || !heads || *heads == 0) {
        throw top.error(key,
                        "missing, and hidden_size / num_attention_heads cannot stand in for it");
    }
    if (*hidden % *heads != 0) {
        throw top.error(key, fmt::format("missing, and hidden_size {} is not a multiple of "
                                         "num_attention_heads {}",
                                         *hidden, *heads));
    }
    return checked_head_dim(top, key, *hidden / *heads);
}

// rope_type (or v4's "type") of a rope dict, "default" when absent; one transformers knows.
std::string read_rope_type(const Keys& dict) {
    std::optional<std::string> type = dict.text("rope_type");
    if (!type) type = dict.text("type");
    const std::string rope_type = type.value_or("default");
    if (!known_type(rope_type)) {
        throw dict.error(dict.has("rope_type") ? "rope_type" : "type",
                         fmt::format("unknown rope type '{}' (expected one of {})", rope_type,
                                     fmt::join(hf_rope_types(), ", ")));
    }
    return rope_type;
}

// rope_theta: a v5 dict's own, else the top-level one, else 10000.
double resolve_theta(const Keys& top, const Keys* dict, bool v5) {
    const bool in_dict = v5 && dict && dict->has("rope_theta");
    const double theta =
        in_dict ? *dict->number("rope_theta") : top.number("rope_theta").value_or(10000.0);
    if (!(theta > 1.0)) {
        throw(in_dict ? *dict : top)
            .error("rope_theta", fmt::format("expected a number above 1, got {}", theta));
    }
    return theta;
}

// Which key holds the head dimension: Gemma 4's full-attention layers have their own.
std::string head_dim_key(const Keys& top, const std::string& rope_type,
                         const std::string& layer_type) {
    const bool global =
        rope_type == "proportional" && layer_type == "full_attention" && top.has("global_head_dim");
    return global ? "global_head_dim" : "head_dim";
}

std::size_t even_head_dim(const Keys& top, const std::string& key) {
    const std::size_t head_dim = resolve_head_dim(top, key);
    if (head_dim % 2 != 0) {
        throw top.error(key, fmt::format("expected an even head dimension, got {}", head_dim));
    }
    return head_dim;
}

// partial_rotary_factor (top-level first; a dict's only in v5 or for proportional) and the
// rotary dimension it gives.
void resolve_rotary_dim(const Keys& top, const Keys* dict, bool v5, const std::string& head_key,
                        HfRopeParameters& p) {
    const bool proportional = p.rope_type == "proportional";
    const Keys* prf_keys = top.has("partial_rotary_factor") ? &top : nullptr;
    if (!prf_keys && dict && (v5 || proportional) && dict->has("partial_rotary_factor"))
        prf_keys = dict;
    if (prf_keys) {
        p.partial_rotary_factor = *prf_keys->number("partial_rotary_factor");
        const double lo = proportional ? 0.0 : 1e-12;
        if (!(p.partial_rotary_factor >= lo && p.partial_rotary_factor <= 1.0)) {
            throw prf_keys->error("partial_rotary_factor",
                                  fmt::format("expected a fraction in {}0, 1], got {}",
                                              proportional ? "[" : "(", p.partial_rotary_factor));
        }
    }
    if (proportional) {
        p.rotary_dim = p.head_dim;  // proportional always covers the whole head
        return;
    }
    p.rotary_dim =
        static_cast<std::size_t>(static_cast<double>(p.head_dim) * p.partial_rotary_factor);
    if (p.rotary_dim < 2 || p.rotary_dim % 2 != 0) {
        throw(prf_keys ? *prf_keys : top)
            .error(prf_keys ? "partial_rotary_factor" : head_key,
                   fmt::format("rotary dimension int({} * {}) = {} is not even and positive",
                               p.head_dim, p.partial_rotary_factor, p.rotary_dim));
    }
}

// max_position_embeddings, which `why` cannot do without.
std::size_t needed_max_positions(const Keys& top, const HfRopeParameters& p,
                                 const std::string& why) {
    if (p.max_position_embeddings == 0) {
        throw top.error("max_position_embeddings", "missing (needed by " + why + ")");
    }
    return p.max_position_embeddings;
}

double positive_factor(const Keys& dict, double factor) {
    if (!(factor > 0)) {
        throw dict.error("factor", fmt::format("expected a positive number, got {}", factor));
    }
    return factor;
}

// original_max_position_embeddings of llama3, yarn and longrope, as each version resolves it.
std::size_t resolve_original_max_positions(const Keys& top, const Keys& d, bool v5, bool per_layer,
                                           const HfRopeParameters& p) {
    const std::string& type = p.rope_type;
    const auto in_dict = d.count("original_max_position_embeddings");
    const auto at_top = top.count("original_max_position_embeddings");
    std::size_t original = 0;
    if (v5 || type == "proportional") {
        if (!per_layer && at_top)
            original = *at_top;
        else if (in_dict)
            original = *in_dict;
        else
            original = needed_max_positions(top, p, "rope_type " + type);
    } else if (type == "llama3") {
        if (!in_dict)
            throw d.error("original_max_position_embeddings",
                          "missing (required by rope_type llama3)");
        original = *in_dict;
    } else if (type == "yarn") {
        original = in_dict ? *in_dict : needed_max_positions(top, p, "rope_type yarn");
    } else {
        original = at_top ? *at_top : needed_max_positions(top, p, "rope_type longrope");
    }
    if (original == 0) {
        throw d.error("original_max_position_embeddings", "expected a positive integer");
    }
    return original;
}

// The factor each rope type's init function sees (yarn and longrope may derive it from the
// context lengths); none for default.
std::optional<double> resolve_factor(const Keys& top, const Keys& d, bool v5,
                                     const HfRopeParameters& p) {
    const std::string& type = p.rope_type;
    const double original = static_cast<double>(p.original_max_position_embeddings.value_or(0));
    const auto ratio = [&](const std::string& why) {
        return static_cast<double>(needed_max_positions(top, p, why)) / original;
    };
    if (type == "linear" || type == "dynamic" || type == "llama3") {
        return positive_factor(d, d.required("factor", "required by rope_type " + type));
    }
    if (type == "proportional") return positive_factor(d, d.number("factor").value_or(1.0));
    if (type == "yarn") {
        if (!v5 && d.has("original_max_position_embeddings")) return ratio("yarn's factor");
        if (d.has("factor")) return positive_factor(d, *d.number("factor"));
        return ratio("yarn without factor");
    }
    if (type == "longrope") {
        if (!v5 && top.has("original_max_position_embeddings")) return ratio("longrope's factor");
        if (d.has("factor")) return positive_factor(d, *d.number("factor"));
        return v5 ? ratio("longrope without factor") : 1.0;
    }
    return std::nullopt;
}

void read_yarn_parameters(const Keys& d, HfRopeParameters& p) {
    // transformers: rope_parameters.get("beta_fast") or 32 (0 also falls back).
    p.beta_fast = d.number("beta_fast").value_or(0.0);
    if (p.beta_fast == 0.0) p.beta_fast = 32.0;
    p.beta_slow = d.number("beta_slow").value_or(0.0);
    if (p.beta_slow == 0.0) p.beta_slow = 1.0;
    if (!(p.beta_fast > 0 && p.beta_slow > 0)) {
        throw d.error("beta_fast", "beta_fast and beta_slow must be positive");
    }
    p.mscale = d.number("mscale");
    p.mscale_all_dim = d.number("mscale_all_dim");
    p.truncate = d.flag("truncate").value_or(true);
}

void read_llama3_parameters(const Keys& d, HfRopeParameters& p) {
    p.low_freq_factor = d.required("low_freq_factor", "required by rope_type llama3");
    p.high_freq_factor = d.required("high_freq_factor", "required by rope_type llama3");
    if (!(p.low_freq_factor > 0 && p.high_freq_factor > p.low_freq_factor)) {
        throw d.error("high_freq_factor",
                      fmt::format("expected 0 < low_freq_factor < high_freq_factor, got {} and {}",
                                  p.low_freq_factor, p.high_freq_factor));
    }
}

// The rope dict's scaling parameters: attention factor, original context, factor, and what
// the rope type alone reads.
void resolve_scaling(const Keys& top, const Keys& d, bool v5, bool per_layer,
                     const std::string& head_key, HfRopeParameters& p) {
    const std::string& type = p.rope_type;
    p.attention_factor = d.number("attention_factor");
    if (p.attention_factor && !(*p.attention_factor > 0)) {
        throw d.error("attention_factor", "expected a positive number");
    }
    if (type == "llama3" || type == "yarn" || type == "longrope") {
        p.original_max_position_embeddings =
            resolve_original_max_positions(top, d, v5, per_layer, p);
    }
    p.factor = resolve_factor(top, d, v5, p);
    if (type == "dynamic") {
        needed_max_positions(top, p, "rope_type dynamic");
        if (p.rotary_dim <= 2)
            throw top.error(head_key, "dynamic scaling needs a rotary dim above 2");
    } else if (type == "yarn") {
        read_yarn_parameters(d, p);
    } else if (type == "llama3") {
        read_llama3_parameters(d, p);
    } else if (type == "longrope") {
        p.short_factor = d.numbers("short_factor", p.rotary_dim / 2);
        p.long_factor = d.numbers("long_factor", p.rotary_dim / 2);
    }
}

// What one rope dict (or none, for a plain config) means, resolved with the rules of the
// transformers version whose style it is. Differences between v4 and v5 (both versions' code):
//  - yarn: v4 replaces factor by max_position_embeddings / original_max_position_embeddings
//    whenever the dict has the latter; v5 uses the explicit factor and the ratio only when
//    factor is missing.
//  - longrope: a top-level original_max_position_embeddings replaces factor by the ratio (v4)
//    or is used only when factor is missing (v5); in both it is the short/long threshold.
//  - llama3: v4 requires original_max_position_embeddings in the dict; v5 takes a top-level one
//    first, then the dict's, then max_position_embeddings.
//  - partial_rotary_factor: v4 reads only the top-level key; v5 also the dict's (top-level wins).
HfRopeParameters resolve(const Keys& top, const Keys* dict, HfStyle style, bool per_layer,
                         const std::string& layer_type) {
    const bool v5 = style == HfStyle::rope_parameters;
    HfRopeParameters p;
    if (dict) p.rope_type = read_rope_type(*dict);
    p.theta = resolve_theta(top, dict, v5);
    const std::string head_key = head_dim_key(top, p.rope_type, layer_type);
    p.head_dim = even_head_dim(top, head_key);
    resolve_rotary_dim(top, dict, v5, head_key, p);
    p.max_position_embeddings = top.count("max_position_embeddings").value_or(0);
    if (dict) resolve_scaling(top, *dict, v5, per_layer, head_key, p);
    return p;
}

double yarn_mscale(double scale, double mscale) {
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

double yarn_correction_dim(double rotations, double dim, double base, double max_pos) {
    return dim * std::log(max_pos / (rotations * 2.0 * kPi)) / (2.0 * std::log(base));
}

// Gemma's proportional RoPE: the first int(p * head_dim // 2) default frequencies, divided by
// factor, and zeros (no rotation) for the rest.
std::vector<double> proportional_inv_freq(const HfRopeParameters& p) {
    const std::size_t kept = hf_proportional_kept(p.partial_rotary_factor, p.head_dim);
    std::vector<double> inv_freq(p.head_dim / 2, 0.0);
    for (std::size_t k = 0; k < kept && k < inv_freq.size(); ++k) {
        inv_freq[k] =
            std::pow(p.theta, -2.0 * static_cast<double>(k) / static_cast<double>(p.head_dim)) /
            p.factor.value_or(1.0);
    }
    return inv_freq;
}

// Dynamic NTK scaling: the base grows once seq_len passes max_position_embeddings.
double dynamic_base(const HfRopeParameters& p, std::optional<double> seq_len) {
    const double dim = static_cast<double>(p.rotary_dim);
    const double max_pos = static_cast<double>(p.max_position_embeddings);
    const double seq = std::max(seq_len.value_or(max_pos), max_pos);
    const double f = *p.factor;
    return p.theta * std::pow(f * seq / max_pos - (f - 1.0), dim / (dim - 2.0));
}

double yarn_attention_factor(const HfRopeParameters& p) {
    const double f = *p.factor;
    if (p.attention_factor) return *p.attention_factor;
    if (p.mscale && p.mscale_all_dim && *p.mscale != 0 && *p.mscale_all_dim != 0) {
        return yarn_mscale(f, *p.mscale) / yarn_mscale(f, *p.mscale_all_dim);
    }
    return yarn_mscale(f, 1.0);
}

// YaRN: frequencies below the correction range are interpolated by factor, those above kept,
// with a linear ramp between.
void apply_yarn(const HfRopeParameters& p, Schedule& s) {
    const double f = *p.factor, dim = static_cast<double>(p.rotary_dim);
    const double original = static_cast<double>(*p.original_max_position_embeddings);
    s.attention_factor = yarn_attention_factor(p);
    double low = yarn_correction_dim(p.beta_fast, dim, p.theta, original);
    double high = yarn_correction_dim(p.beta_slow, dim, p.theta, original);
    if (p.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, dim - 1.0);
    if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
    for (std::size_t k = 0; k < s.inv_freq.size(); ++k) {
        const double ramp = std::clamp((static_cast<double>(k) - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;  // weight of the unscaled frequency
        const double g = s.inv_freq[k];
        s.inv_freq[k] = (g / f) * (1.0 - extrapolation) + g * extrapolation;
    }
}

// LongRoPE: per-frequency divisors, the long ones past the original context.
void apply_longrope(const HfRopeParameters& p, std::optional<double> seq_len, Schedule& s) {
    const double original = static_cast<double>(*p.original_max_position_embeddings);
    const bool long_context = seq_len && *seq_len > original;
    const std::vector<double>& ext = long_context ? p.long_factor : p.short_factor;
    for (std::size_t k = 0; k < s.inv_freq.size(); ++k) s.inv_freq[k] /= ext[k];
    if (p.attention_factor) {
        s.attention_factor = *p.attention_factor;
    } else {
        const double f = p.factor.value_or(1.0);
        s.attention_factor = f <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(f) / std::log(original));
    }
}

// Llama 3: wavelengths shorter than original / high_freq_factor unchanged, longer than
// original / low_freq_factor divided by factor, and a smooth blend between.
void apply_llama3(const HfRopeParameters& p, Schedule& s) {
    const double f = *p.factor;
    const double original = static_cast<double>(*p.original_max_position_embeddings);
    const double low_freq_wavelen = original / p.low_freq_factor;
    const double high_freq_wavelen = original / p.high_freq_factor;
    for (double& g : s.inv_freq) {
        const double wavelen = 2.0 * kPi / g;
        if (wavelen < high_freq_wavelen) continue;  // high frequencies: unchanged
        if (wavelen > low_freq_wavelen) {
            g /= f;  // low frequencies: interpolated by factor
            continue;
        }
        const double smooth =
            (original / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        g = (1.0 - smooth) * g / f + smooth * g;
    }
}
}  // namespace

std::size_t hf_proportional_kept(double p, std::size_t head_dim) {
    const double product = p * static_cast<double>(head_dim);
    return static_cast<std::size_t>(std::floor(product / 2.0));
}

const std::vector<std::string>& hf_rope_types() {
    static const std::vector<std::string> types = {"default",  "linear", "dynamic",     "yarn",
                                                   "longrope", "llama3", "proportional"};
    return types;
}

HfRopeConfig parse_hf_rope_config(const Json& original, const std::string& file) {
    if (!original.is_object()) throw data_error(file, "", "expected a JSON object");
    const Json config = hf_standard_rope_keys(original, file);
    HfRopeConfig out;
    out.file = file;
    const Keys top(config, file, "");
    if (config.contains("layer_types") && config.at("layer_types").is_array()) {
        for (const Json& t : config.at("layer_types")) {
            if (!t.is_string()) throw top.error("layer_types", "expected a list of strings");
            out.layer_types.push_back(t.get<std::string>());
        }
    }
    std::string key;
    if (top.has("rope_parameters")) {
        out.style = HfStyle::rope_parameters;
        key = "rope_parameters";
    } else if (top.has("rope_scaling")) {
        out.style = HfStyle::rope_scaling;
        key = "rope_scaling";
    }
    if (key.empty()) {
        out.by_layer_type.emplace_back("", resolve(top, nullptr, out.style, false, ""));
        return out;
    }
    const Json& dict = config.at(key);
    if (!dict.is_object()) throw top.error(key, "expected a JSON object");

    // v5 per-layer form: every key is one of the layer types (transformers' own test).
    const std::set<std::string> types(out.layer_types.begin(), out.layer_types.end());
    bool per_layer = out.style == HfStyle::rope_parameters && !types.empty() && !dict.empty();
    for (const auto& item : dict.items()) per_layer = per_layer && types.count(item.key()) > 0;
    if (!per_layer) {
        const Keys d(dict, file, key);
        out.by_layer_type.emplace_back("", resolve(top, &d, out.style, false, ""));
        return out;
    }
    for (const auto& item : dict.items()) {
        if (!item.value().is_object())
            throw top.error(key + "." + item.key(), "expected a JSON object");
        const Keys d(item.value(), file, key + "." + item.key());
        out.by_layer_type.emplace_back(item.key(), resolve(top, &d, out.style, true, item.key()));
    }
    for (const std::string& t : types) {
        if (!dict.contains(t)) throw top.error(key, "has no parameters for layer type '" + t + "'");
    }
    return out;
}

HfRopeConfig read_hf_rope_config(const std::string& path) {
    const auto config = read_json_file(path);
    return interpret_json(path, [&] { return parse_hf_rope_config(config, path); });
}

Schedule hf_schedule(const HfRopeParameters& p, std::optional<double> seq_len) {
    Schedule s;
    s.head_dim = p.head_dim;
    s.rotary_dim = p.rotary_dim;
    s.layout = Layout::half;
    const std::string& type = p.rope_type;
    if (type == "proportional") {
        s.inv_freq = proportional_inv_freq(p);
        return s;
    }
    s.inv_freq =
        default_inv_freq(p.rotary_dim, type == "dynamic" ? dynamic_base(p, seq_len) : p.theta);
    if (type == "linear") {
        for (double& g : s.inv_freq) g /= *p.factor;
    } else if (type == "yarn") {
        apply_yarn(p, s);
    } else if (type == "longrope") {
        apply_longrope(p, seq_len, s);
    } else if (type == "llama3") {
        apply_llama3(p, s);
    }
    return s;
}

}  // namespace ropekit
