#include "ropekit/convert/prope_encoding.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "ropekit/convert/hf_rope_validation.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

constexpr double kPi = 3.14159265358979323846;

// Everything one encoder needs about one layer type.
struct EncodeInput {
    const HfRopeParameters& params;
    const Schedule& original;
    const Schedule& target;
    double requested_p;
    bool v5;
    const std::string& file;
    std::string key;  // "rope_scaling" / "rope_parameters[.layer_type]" for messages
};

// Number of leading non-zero frequencies; the encoders below can only keep a leading run.
std::size_t leading_kept(const std::vector<double>& g) {
    std::size_t m = 0;
    while (m < g.size() && g[m] != 0.0) ++m;
    for (std::size_t k = m; k < g.size(); ++k) {
        if (g[k] != 0.0) throw std::logic_error("p-RoPE table keeps a non-leading frequency");
    }
    return m;
}

std::size_t original_context(const HfRopeParameters& p) {
    if (p.original_max_position_embeddings) return *p.original_max_position_embeddings;
    if (p.max_position_embeddings) return p.max_position_embeddings;
    return 8192;
}

// llama3's context: the input's original one while it is below max_position_embeddings, else
// one less (transformers warns on every load unless original < max). The frequencies depend only
// on the cut-off wavelengths context / low_freq_factor and context / high_freq_factor, which
// encode_llama3 places itself, so the context changes nothing else.
std::size_t llama3_context(const HfRopeParameters& p) {
    const std::size_t max =
        p.max_position_embeddings > 0 ? p.max_position_embeddings : kDefaultMaxPositionEmbeddings;
    return max > 1 ? std::min(original_context(p), max - 1) : original_context(p);
}

void require_unit_attention(const EncodeInput& in, const char* encoding) {
    if (std::abs(in.original.attention_factor - 1.0) > 1e-12) {
        throw data_error(
            in.file, in.key,
            fmt::format("attention factor {} cannot be carried by the {} encoding; use "
                        "--encoding longrope",
                        in.original.attention_factor, encoding));
    }
}

// A new rope dict; in v5 with the base, and with the partial rotary factor, which v5 reads from
// the dict (so that replacing the input's dict keeps it: p applies to the rotated part).
Json begin_dict(const EncodeInput& in, const char* type) {
    Json d = Json::object();
    d["rope_type"] = type;
    if (in.v5) d["rope_theta"] = in.params.theta;
    if (in.v5 && in.params.rotary_dim != in.params.head_dim) {
        d["partial_rotary_factor"] = in.params.partial_rotary_factor;
    }
    return d;
}

Json encode_proportional(const EncodeInput& in) {
    const HfRopeParameters& p = in.params;
    if (p.rope_type != "proportional" && p.rotary_dim != p.head_dim) {
        throw data_error(
            in.file, "partial_rotary_factor",
            fmt::format("partial rotary (rotary_dim {} of head_dim {}) cannot be carried by "
                        "proportional, which rotates the whole head; use --encoding "
                        "longrope or llama3",
                        p.rotary_dim, p.head_dim));
    }
    require_unit_attention(in, "proportional");
    const std::size_t m = leading_kept(in.target.inv_freq);
    // proportional divides every kept frequency by its factor: an input's linear scale survives.
    const double scale = in.original.inv_freq.empty() || in.original.inv_freq[0] == 0.0
                             ? 1.0
                             : 1.0 / in.original.inv_freq[0];
    const std::vector<double> base = default_inv_freq(p.head_dim, p.theta);
    for (std::size_t k = 0; k < m; ++k) {
        if (std::abs(in.target.inv_freq[k] - base[k] / scale) > 1e-9 * base[k] / scale) {
            throw data_error(in.file, in.key,
                             fmt::format("kept frequency {} is scaled ({:.6g} instead of {:.6g}); "
                                         "proportional keeps theta^(-2k/d) / factor only: use "
                                         "--encoding longrope",
                                         k, in.target.inv_freq[k], base[k] / scale));
        }
    }
    const double half = static_cast<double>(p.head_dim / 2);
    double written = in.requested_p;
    for (double candidate :
         {in.requested_p, static_cast<double>(m) / half, (static_cast<double>(m) + 0.5) / half}) {
        if (candidate <= 1.0 && hf_proportional_kept(candidate, p.head_dim) == m) {
            written = candidate;
            break;
        }
    }
    Json d = begin_dict(in, "proportional");
    d["partial_rotary_factor"] = written;
    if (std::abs(scale - 1.0) > 1e-12) d["factor"] = scale;
    return d;
}

Json encode_llama3(const EncodeInput& in) {
    require_unit_attention(in, "llama3");
    const HfRopeParameters& p = in.params;
    const std::vector<double> base = default_inv_freq(p.rotary_dim, p.theta);
    const std::size_t m = leading_kept(in.target.inv_freq);
    for (std::size_t k = 0; k < m; ++k) {
        if (std::abs(in.target.inv_freq[k] - base[k]) > 1e-9 * base[k]) {
            throw data_error(
                in.file, in.key,
                fmt::format("kept frequency {} is scaled ({:.6g} instead of {:.6g}); a llama3 "
                            "hard cut keeps only unscaled frequencies: use --encoding "
                            "longrope",
                            k, in.target.inv_freq[k], base[k]));
        }
    }
    // Cut-off wavelengths strictly between the last kept and the first dropped wavelength, a
    // third of the (log) gap from each, so float32 rounding in any loader cannot move a
    // frequency into the smoothing band.
    const auto wavelength = [&](std::size_t k) { return 2.0 * kPi / base[k]; };
    const std::size_t n = base.size();
    double high_wavelen, low_wavelen;
    if (m == 0) {
        high_wavelen = wavelength(0) / 4.0;
        low_wavelen = wavelength(0) / 2.0;
    } else if (m == n) {
        high_wavelen = wavelength(n - 1) * 2.0;
        low_wavelen = wavelength(n - 1) * 4.0;
    } else {
        const double ratio = wavelength(m) / wavelength(m - 1);
        high_wavelen = wavelength(m - 1) * std::cbrt(ratio);
        low_wavelen = wavelength(m - 1) * std::cbrt(ratio) * std::cbrt(ratio);
    }
    const std::size_t context = llama3_context(p);
    Json d = begin_dict(in, "llama3");
    d["factor"] = kDroppedFactor;
    d["low_freq_factor"] = static_cast<double>(context) / low_wavelen;
    d["high_freq_factor"] = static_cast<double>(context) / high_wavelen;
    d["original_max_position_embeddings"] = context;
    return d;
}

Json encode_longrope(const EncodeInput& in) {
    const HfRopeParameters& p = in.params;
    const std::vector<double> base = default_inv_freq(p.rotary_dim, p.theta);
    Json factors = Json::array();
    for (std::size_t k = 0; k < base.size(); ++k) {
        const double g = in.target.inv_freq[k];
        factors.push_back(g > 0.0 ? base[k] / g : kDroppedFactor);
    }
    Json d = begin_dict(in, "longrope");
    d["factor"] = 1.0;
    d["attention_factor"] = in.original.attention_factor;
    d["original_max_position_embeddings"] = original_context(p);
    d["short_factor"] = factors;
    d["long_factor"] = factors;
    return d;
}

// The top-level base of a v4 config: rope_theta, and rotary_emb_base for gpt_neox, whose v4
// GPTNeoXConfig reads that instead.
void set_v4_theta(Json& out, double theta) {
    out["rope_theta"] = theta;
    if (out.value("model_type", Json()) == "gpt_neox") out["rotary_emb_base"] = theta;
}

bool v5_output(const HfRopeConfig& in, const Json& config) {
    if (in.style == HfStyle::rope_parameters) return true;
    if (in.style == HfStyle::rope_scaling) return false;
    const auto version = config.find("transformers_version");
    return version != config.end() && version->is_string() &&
           version->get<std::string>().rfind("5.", 0) == 0;
}

}  // namespace

std::string encoding_name(PropeEncoding encoding) {
    return enum_name(kPropeEncodingNames, encoding);
}

PropeEncoding parse_encoding(const std::string& name) {
    return parse_enum(kPropeEncodingNames, name, "--encoding");
}

HfPropePlan plan_hf_prope(const Json& config, const std::string& file,
                          const PropeRequest& request) {
    if (request.reverse && request.encoding != PropeEncoding::longrope && request.p < 1.0) {
        throw usage_error(
            fmt::format("--reverse cannot be expressed by the {} encoding (it always drops "
                        "the lowest frequencies); use --encoding longrope",
                        encoding_name(request.encoding)));
    }
    HfPropePlan plan;
    plan.config = gemma3_rope_parameters(config, file, plan.notes);  // others: unchanged
    Json& out = plan.config;
    const HfRopeConfig in = parse_hf_rope_config(out, file);
    const bool v5 = v5_output(in, out);
    const std::string dict_key = v5 ? "rope_parameters" : "rope_scaling";
    const std::string in_key =
        in.style == HfStyle::rope_parameters ? "rope_parameters" : "rope_scaling";
    for (const auto& [layer_type, original_params] : in.by_layer_type) {
        const std::string key = layer_type.empty() ? in_key : in_key + "." + layer_type;
        if (original_params.rope_type == "yarn" || original_params.rope_type == "dynamic") {
            throw data_error(
                file, key,
                fmt::format("rope_type {} scales frequencies by context length and cannot be "
                            "carried by any p-RoPE encoding; convert the unscaled base model",
                            original_params.rope_type));
        }
        HfRopeParameters params = original_params;
        if (request.theta) params.theta = *request.theta;
        PropeLayerPlan layer{layer_type, hf_schedule(params), {}};
        layer.original.inv_freq = snap_dropped(std::move(layer.original.inv_freq));
        layer.target = apply_prope(layer.original, request.p, request.reverse);
        const EncodeInput input{params, layer.original, layer.target, request.p, v5, file, key};
        Json dict;
        switch (request.encoding) {
            case PropeEncoding::proportional:
                dict = encode_proportional(input);
                break;
            case PropeEncoding::llama3:
                dict = encode_llama3(input);
                break;
            case PropeEncoding::longrope:
                dict = encode_longrope(input);
                break;
        }
        if (layer_type.empty()) {
            out[dict_key] = dict;
        } else {
            out[dict_key][layer_type] = dict;
        }
        plan.layers.push_back(std::move(layer));
    }
    if (v5 && out.contains("rope_scaling")) {
        out.erase("rope_scaling");
        plan.notes.push_back("removed rope_scaling (rope_parameters carries the schedule)");
    }
    if (!v5) {
        set_v4_theta(out, request.theta.value_or(in.global().theta));
    } else if (request.theta && out.contains("rope_theta")) {
        out["rope_theta"] = *request.theta;
    }
    // transformers lets these top-level keys override what the rope dict says.
    if (request.encoding != PropeEncoding::proportional &&
        out.contains("original_max_position_embeddings")) {
        out.erase("original_max_position_embeddings");
        plan.notes.push_back(
            "removed top-level original_max_position_embeddings (it would override the " +
            encoding_name(request.encoding) + " parameters)");
    }
    if (request.encoding == PropeEncoding::proportional && out.contains("partial_rotary_factor")) {
        out.erase("partial_rotary_factor");
        plan.notes.push_back(
            "removed top-level partial_rotary_factor (it would override proportional's p)");
    }
    check_round_trip(out, file, plan.layers);
    return plan;
}

void check_round_trip(const Json& emitted, const std::string& file,
                      const std::vector<PropeLayerPlan>& layers) {
    const std::vector<std::string> warnings = llama3_load_warnings(emitted);
    if (!warnings.empty()) {
        throw data_error(file, "",
                         "round-trip check failed: transformers would warn on loading the "
                         "emitted config: " +
                             warnings.front());
    }
    const HfRopeConfig back = parse_hf_rope_config(emitted, file + " (as emitted)");
    if (back.by_layer_type.size() != layers.size()) {
        throw data_error(
            file, "",
            "round-trip check failed: the emitted config has a different set of layer types");
    }
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const PropeLayerPlan& want = layers[i];
        const auto& [layer_type, params] = back.by_layer_type[i];
        const std::string where = layer_type.empty() ? "round-trip check failed"
                                                     : "round-trip check failed for " + layer_type;
        // At initialisation and far past any long-context threshold (longrope's long factors).
        for (const std::optional<double> seq_len :
             {std::optional<double>{}, std::optional<double>{1e9}}) {
            const Schedule got = hf_schedule(params, seq_len);
            if (got.inv_freq.size() != want.target.inv_freq.size() ||
                got.head_dim != want.target.head_dim) {
                throw data_error(
                    file, "",
                    fmt::format("{}: {} frequencies over head_dim {} instead of {} over {}", where,
                                got.inv_freq.size(), got.head_dim, want.target.inv_freq.size(),
                                want.target.head_dim));
            }
            for (std::size_t k = 0; k < got.inv_freq.size(); ++k) {
                const double t = want.target.inv_freq[k], g = got.inv_freq[k];
                const bool ok = t == 0.0 ? std::abs(g) <= kDroppedTolerance
                                         : std::abs(g - t) <= kKeptTolerance * t;
                if (!ok) {
                    throw data_error(
                        file, "",
                        fmt::format("{}: frequency {} reads back as {:.9g}, intended {:.9g}", where,
                                    k, g, t));
                }
            }
            if (std::abs(got.attention_factor - want.target.attention_factor) >
                kKeptTolerance * want.target.attention_factor) {
                throw data_error(
                    file, "",
                    fmt::format("{}: attention factor reads back as {}, intended {}", where,
                                got.attention_factor, want.target.attention_factor));
            }
        }
    }
}

std::string describe_kept(const std::vector<double>& g) {
    std::size_t kept = 0;
    double lowest = 0.0;
    for (double x : g) {
        if (x == 0.0) continue;
        ++kept;
        if (lowest == 0.0 || x < lowest) lowest = x;
    }
    if (kept == 0) return fmt::format("kept 0 of {} frequencies (NoPE)", g.size());
    return fmt::format(
        "kept {} of {} frequencies; lowest kept {:.6g} rad/token (wavelength {:.6g} tokens)", kept,
        g.size(), lowest, 2.0 * kPi / lowest);
}

}  // namespace ropekit
