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

// rope_freqs.weight, or all ones.
std::vector<double> frequency_factors(const GgufFile& f, std::size_t count) {
    std::vector<double> factors(count, 1.0);
    const GgufTensorInfo* t = f.find_tensor(kGgufRopeFreqs);
    if (!t) return factors;
    if (t->type != 0 || t->dims.size() != 1 || t->dims[0] != count) {
        throw data_error(f.path(), kGgufRopeFreqs, fmt::format("expected F32 [{}]", count));
    }
    const std::vector<float> stored = f.read_float(kGgufRopeFreqs);
    for (std::size_t i = 0; i < stored.size(); ++i) {
        if (!(stored[i] > 0) || !std::isfinite(stored[i])) {
            throw data_error(f.path(), kGgufRopeFreqs,
                             fmt::format("factor {} is {}", i, stored[i]));
        }
        factors[i] = stored[i];
    }
    return factors;
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
    r.factors = frequency_factors(f, r.n_rot / 2);
    for (std::size_t i = 0; i < r.n_rot / 2; ++i) {
        r.inv_freq.push_back(
            r.freq_scale *
            std::pow(r.base, -2.0 * static_cast<double>(i) / static_cast<double>(r.n_rot)) /
            r.factors[i]);
    }
    return r;
}

}  // namespace ropekit
