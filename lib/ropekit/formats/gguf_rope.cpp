#include "ropekit/formats/gguf_rope.hpp"

#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

namespace {

// n_rot: the rope key, else the key length, else the whole head.
std::size_t rotary_dimension(const GgufFile& f, const std::string& a) {
    double n_rot = gguf_number(f, a + "rope.dimension_count", 0.0);
    if (n_rot == 0) n_rot = gguf_number(f, a + "attention.key_length", 0.0);
    if (n_rot == 0) {
        const double heads = gguf_number(f, a + "attention.head_count", 0.0);
        if (heads > 0) n_rot = gguf_number(f, a + "embedding_length", 0.0) / heads;
    }
    if (!(n_rot >= 2) || std::fmod(n_rot, 2.0) != 0) {
        throw data_error(f.path(), a + "rope.dimension_count",
                         fmt::format("expected an even rotary dimension, got {}", n_rot));
    }
    return static_cast<std::size_t>(n_rot);
}

// 1 / the linear scaling factor, 1 without scaling.
double frequency_scale(const GgufFile& f, const std::string& a) {
    if (const GgufValue* type = f.find(a + "rope.scaling.type")) {
        const std::string t = type->type == GgufType::string ? type->as_string() : "?";
        if (t == "linear") return 1.0 / gguf_number(f, a + "rope.scaling.factor", 1.0);
        if (t != "none") {
            throw data_error(f.path(), a + "rope.scaling.type",
                             "rope scaling '" + t +
                                 "' is not supported (expected none or linear; Llama 3.x "
                                 "scaling comes as rope_freqs.weight)");
        }
        return 1.0;
    }
    return 1.0 / gguf_number(f, a + "rope.scale_linear", 1.0);
}

// The F32 [count] tensor `name` of positive finite factors, or empty when absent.
std::vector<double> factor_tensor(const GgufFile& f, const char* name, std::size_t count) {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) return {};
    if (t->type != 0 || t->dims.size() != 1 || t->dims[0] != count) {
        throw data_error(f.path(), name, fmt::format("expected F32 [{}]", count));
    }
    const std::vector<float> stored = f.read_float(name);
    std::vector<double> factors(stored.begin(), stored.end());
    for (std::size_t i = 0; i < factors.size(); ++i) {
        if (!(factors[i] > 0) || !std::isfinite(factors[i])) {
            throw data_error(f.path(), name, fmt::format("factor {} is {}", i, factors[i]));
        }
    }
    return factors;
}

// The divisors llama.cpp's get_rope_factors picks for a context within the original one:
// rope_freqs.weight, else the short longrope factors (the pair kept in r), else all ones.
std::vector<double> frequency_factors(const GgufFile& f, const std::string& a, GgufRope& r) {
    const std::size_t count = r.n_rot / 2;
    std::vector<double> freqs = factor_tensor(f, kGgufRopeFreqs, count);
    if (!freqs.empty()) return freqs;
    r.short_factors = factor_tensor(f, kGgufRopeFactorsShort, count);
    r.long_factors = factor_tensor(f, kGgufRopeFactorsLong, count);
    if (r.short_factors.empty() != r.long_factors.empty()) {
        const bool has_short = !r.short_factors.empty();
        throw data_error(f.path(), has_short ? kGgufRopeFactorsLong : kGgufRopeFactorsShort,
                         fmt::format("expected this tensor beside {} (llama.cpp reads the pair)",
                                     has_short ? kGgufRopeFactorsShort : kGgufRopeFactorsLong));
    }
    if (r.short_factors.empty()) return std::vector<double>(count, 1.0);
    r.original_context = static_cast<std::size_t>(gguf_number(
        f, a + "rope.scaling.original_context_length", gguf_number(f, a + "context_length", 0.0)));
    return r.short_factors;
}

// g_i = freq_scale · base^(−2i / n_rot) / factors[i].
std::vector<double> divided_frequencies(const GgufRope& r, const std::vector<double>& factors) {
    std::vector<double> inv_freq;
    for (std::size_t i = 0; i < r.n_rot / 2; ++i) {
        inv_freq.push_back(
            r.freq_scale *
            std::pow(r.base, -2.0 * static_cast<double>(i) / static_cast<double>(r.n_rot)) /
            factors[i]);
    }
    return inv_freq;
}

}  // namespace

double gguf_number(const GgufFile& f, const std::string& key, std::optional<double> fallback) {
    const GgufValue* v = f.find(key);
    if (!v) {
        if (fallback) return *fallback;
        throw data_error(f.path(), key, "expected this key");
    }
    if (!v->is_number()) throw data_error(f.path(), key, "expected a number");
    return v->as_double();
}

GgufRope read_gguf_rope(const GgufFile& f, std::optional<double> theta) {
    GgufRope r;
    const GgufValue* arch = f.find("general.architecture");
    if (!arch || arch->type != GgufType::string) {
        throw data_error(f.path(), "general.architecture",
                         "missing (expected the model architecture)");
    }
    r.arch = arch->as_string();
    const std::string a = r.arch + ".";
    r.n_rot = rotary_dimension(f, a);
    r.base = theta.value_or(gguf_number(f, a + "rope.freq_base", 10000.0));
    r.freq_scale = frequency_scale(f, a);
    r.factors = frequency_factors(f, a, r);
    r.inv_freq = divided_frequencies(r, r.factors);
    r.attention_factor = gguf_number(f, a + "rope.scaling.attn_factor", 1.0);
    if (!(r.attention_factor > 0) || !std::isfinite(r.attention_factor)) {
        throw data_error(f.path(), a + "rope.scaling.attn_factor",
                         fmt::format("expected a positive number, found {}", r.attention_factor));
    }
    return r;
}

std::vector<double> GgufRope::long_inv_freq() const {
    return long_factors.empty() ? inv_freq : divided_frequencies(*this, long_factors);
}

}  // namespace ropekit
