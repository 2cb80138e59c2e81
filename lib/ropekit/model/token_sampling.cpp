#include "ropekit/model/token_sampling.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

std::int64_t pick_token(const float* logits, std::size_t vocab, double temperature, double u) {
    const std::size_t best =
        static_cast<std::size_t>(std::max_element(logits, logits + vocab) - logits);
    if (temperature <= 0.0) return static_cast<std::int64_t>(best);
    const double peak = logits[best];
    double total = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) total += std::exp((logits[v] - peak) / temperature);
    const double target = u * total;
    double running = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) {
        running += std::exp((logits[v] - peak) / temperature);
        if (running > target) return static_cast<std::int64_t>(v);
    }
    return static_cast<std::int64_t>(best);  // u * total rounded past the sum: the mode
}

Tensor<std::int64_t> sample_sequences(const LlamaModel& model, const SampleSpec& spec,
                                      const std::function<void(std::size_t)>& progress) {
    if (spec.count == 0 || spec.length == 0) {
        throw usage_error("--sample and --length must be positive");
    }
    if (!(spec.temperature >= 0.0) || !std::isfinite(spec.temperature)) {
        throw usage_error(fmt::format("--temperature must be >= 0, got {}", spec.temperature));
    }
    const std::size_t vocab = model.config().vocab_size;
    if (spec.bos < 0 || static_cast<std::size_t>(spec.bos) >= vocab) {
        throw usage_error(fmt::format("BOS id {} is outside the vocabulary", spec.bos));
    }
    Tensor<std::int64_t> out({spec.count, spec.length});
    const std::size_t batch_size = std::max<std::size_t>(1, spec.batch);
    std::vector<float> logits;
    for (std::size_t first = 0; first < spec.count; first += batch_size) {
        const std::size_t batch = std::min(batch_size, spec.count - first);
        std::vector<std::mt19937_64> rngs;
        for (std::size_t b = 0; b < batch; ++b) {
            std::seed_seq seq{static_cast<std::uint32_t>(spec.seed),
                              static_cast<std::uint32_t>(spec.seed >> 32),
                              static_cast<std::uint32_t>(spec.first + first + b)};
            rngs.emplace_back(seq);
        }
        KVCache cache(model.config(), batch, spec.length);
        std::vector<std::int64_t> current(batch, spec.bos);
        logits.resize(batch * vocab);
        for (std::size_t t = 0;; ++t) {
            for (std::size_t b = 0; b < batch; ++b) out({first + b, t}) = current[b];
            if (t + 1 == spec.length) break;
            const std::vector<float> hidden = model.forward(current.data(), batch, 1, {}, &cache);
            model.logits(hidden.data(), batch, logits.data());
            for (std::size_t b = 0; b < batch; ++b) {
                // 53 random bits -> a double in [0, 1), the same on every platform.
                const double u = static_cast<double>(rngs[b]() >> 11) * 0x1.0p-53;
                current[b] = pick_token(&logits[b * vocab], vocab, spec.temperature, u);
            }
        }
        if (progress) progress(first + batch);
    }
    return out;
}

}  // namespace ropekit
