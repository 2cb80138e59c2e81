#include "ropekit/dump/demo_dump.hpp"

#include <cmath>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/rope/attention.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

namespace {

constexpr std::size_t kPsiChunks = 4;  // positional heads live in the highest frequencies
constexpr double kPsiChunkNorm = 14.0;
constexpr double kNoise = 0.05;  // every vector gets a little per-token noise
constexpr double kHighFreqScale = 0.1;
constexpr double kLowFreqScale = 0.5;
constexpr double kBandScale = 3.0;

struct HeadPlan {
    bool positional = false;
    std::size_t offset = 0;
};

// Which kv head carries a fixed psi, and which query heads attend with it at what offset.
struct LayerPlan {
    std::vector<bool> kv_positional;
    std::vector<HeadPlan> heads;
};

LayerPlan plan_layer(std::size_t layer, const DemoDumpSpec& spec) {
    LayerPlan plan{std::vector<bool>(spec.kv_heads, false), std::vector<HeadPlan>(spec.heads)};
    for (const PlantedHead& p : demo_planted_heads()) {
        if (p.layer != layer) continue;
        plan.heads[p.head] = {true, p.offset};
        plan.kv_positional[p.head / (spec.heads / spec.kv_heads)] = true;
    }
    return plan;
}

std::size_t band_frequency(std::size_t layer, std::size_t head, std::size_t frequencies) {
    return frequencies - 1 - (layer + head) % 4;
}

class Filler {
  public:
    Filler(const DemoDumpSpec& spec, const Schedule& schedule)
        : spec_(spec), schedule_(schedule), rng_(spec.seed) {}

    std::vector<double> psi() {
        std::vector<double> v(spec_.head_dim, 0.0);
        for (std::size_t c = 0; c < kPsiChunks; ++c) {
            const double angle = std::uniform_real_distribution<double>(0, 2 * M_PI)(rng_);
            const auto [a, b] = schedule_.chunk_dims(c);
            v[a] = kPsiChunkNorm * std::cos(angle);
            v[b] = kPsiChunkNorm * std::sin(angle);
        }
        return v;
    }

    // A "semantic" vector: small high frequencies, larger low ones, a strong band.
    void semantic(float* v, std::size_t band) {
        const std::size_t n = schedule_.frequency_count();
        for (std::size_t c = 0; c < n; ++c) {
            const double scale = c == band   ? kBandScale
                                 : c < n / 2 ? kHighFreqScale
                                             : kLowFreqScale;
            const auto [a, b] = schedule_.chunk_dims(c);
            v[a] = static_cast<float>(scale * normal_(rng_));
            v[b] = static_cast<float>(scale * normal_(rng_));
        }
    }

    void with_noise(float* v, const std::vector<double>& base) {
        for (std::size_t d = 0; d < spec_.head_dim; ++d) {
            v[d] = static_cast<float>(base[d] + kNoise * normal_(rng_));
        }
    }

  private:
    const DemoDumpSpec& spec_;
    const Schedule& schedule_;
    std::mt19937_64 rng_;
    std::normal_distribution<double> normal_;
};

void write_layer(H5Output& out, std::size_t layer, const DemoDumpSpec& spec,
                 const Schedule& schedule, Filler& fill) {
    const LayerPlan plan = plan_layer(layer, spec);
    const std::size_t B = spec.batch, T = spec.tokens, H = spec.heads, KV = spec.kv_heads,
                      D = spec.head_dim, group = H / KV, F = schedule.frequency_count();
    Tensor<float> q({B, T, H, D}), k({B, T, KV, D});
    std::vector<std::vector<double>> psi(KV);
    for (std::size_t g = 0; g < KV; ++g) {
        if (plan.kv_positional[g]) psi[g] = fill.psi();
    }
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t g = 0; g < KV; ++g) {
                float* key = &k({b, t, g, 0});
                if (plan.kv_positional[g]) {
                    fill.with_noise(key, psi[g]);
                } else {
                    fill.semantic(key, band_frequency(layer, g * group, F));
                }
            }
            for (std::size_t h = 0; h < H; ++h) {
                float* query = &q({b, t, h, 0});
                const HeadPlan& head = plan.heads[h];
                if (head.positional) {
                    // q = R^(-r) psi, so q^T R^(j-i) psi peaks at j = i - r.
                    std::vector<double> rotated = psi[h / group];
                    rotate(rotated.data(), schedule, -static_cast<double>(head.offset));
                    fill.with_noise(query, rotated);
                } else {
                    fill.semantic(query, band_frequency(layer, h, F));
                }
            }
        }
    }
    Tensor<float> rot_q = q, rot_k = k;
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t t = 0; t < T; ++t) {
            for (std::size_t h = 0; h < H; ++h) rotate(&rot_q({b, t, h, 0}), schedule, double(t));
            for (std::size_t g = 0; g < KV; ++g) rotate(&rot_k({b, t, g, 0}), schedule, double(t));
        }
    }
    Tensor<float> scores({B, H, T, T}), pattern({B, H, T, T});
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    for (std::size_t b = 0; b < B; ++b) {
        for (std::size_t h = 0; h < H; ++h) {
            float* s = &scores({b, h, 0, 0});
            causal_scores(&rot_q({b, 0, h, 0}), H * D, &rot_k({b, 0, h / group, 0}), KV * D, T, D,
                          scale, s);
            float* p = &pattern({b, h, 0, 0});
            std::copy(s, s + T * T, p);
            causal_softmax(p, T);
        }
    }
    const std::vector<std::pair<Hook, const Tensor<float>*>> hooks = {
        {Hook::q, &q},         {Hook::k, &k},           {Hook::rot_q, &rot_q},
        {Hook::rot_k, &rot_k}, {Hook::scores, &scores}, {Hook::pattern, &pattern}};
    for (const auto& [hook, tensor] : hooks) {
        const bool logits = hook == Hook::scores;
        out.write(hook_dataset(layer, hook), *tensor, hook_axes(hook),
                  logits ? "logit (scaled by 1/sqrt(d_head); -inf above the diagonal)"
                  : hook == Hook::pattern ? "probability"
                                          : "activation",
                  spec.stored);
    }
}

}  // namespace

std::vector<PlantedHead> demo_planted_heads() {
    return {{0, 0, 0}, {0, 1, 1}, {1, 3, 3}, {2, 0, 1}};
}

std::vector<PlantedBand> demo_planted_bands(const DemoDumpSpec& spec) {
    std::vector<PlantedBand> bands;
    const std::size_t frequencies = spec.head_dim / 2;
    for (std::size_t layer = 0; layer < spec.layers; ++layer) {
        const LayerPlan plan = plan_layer(layer, spec);
        for (std::size_t h = 0; h < spec.heads; ++h) {
            if (!plan.heads[h].positional &&
                !plan.kv_positional[h / (spec.heads / spec.kv_heads)]) {
                bands.push_back({layer, h, band_frequency(layer, h, frequencies)});
            }
        }
    }
    return bands;
}

void write_demo_dump(H5Output& out, const DemoDumpSpec& spec,
                     const std::function<void(std::size_t, std::size_t)>& layer_done) {
    if (spec.layers < 3 || spec.heads < 4 || spec.kv_heads < 2 || spec.heads % spec.kv_heads != 0 ||
        spec.head_dim < 16 || spec.tokens < 8 || spec.batch < 1) {
        throw usage_error(
            "the demo dump needs at least 3 layers, 4 heads, 2 kv heads dividing them, head_dim 16 "
            "and 8 tokens");
    }
    const Schedule schedule = make_schedule(spec.head_dim, spec.theta, Layout::half);
    Filler fill(spec, schedule);
    for (std::size_t layer = 0; layer < spec.layers; ++layer) {
        write_layer(out, layer, spec, schedule, fill);
        if (layer_done) layer_done(layer + 1, spec.layers);
    }
    DumpAttributes attributes;
    attributes.rope_theta = spec.theta;
    attributes.rope_layout = Layout::half;
    attributes.rotary_dim = spec.head_dim;
    attributes.bos = 0;
    attributes.model = "ropekit synthetic demo";
    write_dump_attributes(out, attributes);
    nlohmann::json heads = nlohmann::json::array(), bands = nlohmann::json::array();
    for (const auto& p : demo_planted_heads()) {
        heads.push_back({{"layer", p.layer}, {"head", p.head}, {"offset", p.offset}});
    }
    for (const auto& b : demo_planted_bands(spec)) {
        bands.push_back({{"layer", b.layer}, {"head", b.head}, {"frequency", b.frequency}});
    }
    out.set_attr("/", "planted_heads", heads.dump());
    out.set_attr("/", "planted_bands", bands.dump());
    out.set_attr("/", "seed", static_cast<std::int64_t>(spec.seed));
}

}  // namespace ropekit
