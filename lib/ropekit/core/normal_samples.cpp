#include "ropekit/core/normal_samples.hpp"

#include <cmath>

namespace ropekit {

namespace {

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

struct Xoshiro256Plus {
    std::uint64_t s[4];
    Xoshiro256Plus(std::uint64_t seed, std::uint64_t stream) {
        std::uint64_t state = seed ^ splitmix64(stream);
        for (auto& word : s) word = splitmix64(state);
    }
    std::uint64_t next() {
        const std::uint64_t result = s[0] + s[3], t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
    // Uniform in (0, 1]: the top 53 bits, shifted off zero so that log() is finite.
    double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
};

}  // namespace

void fill_standard_normal(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n) {
    Xoshiro256Plus rng(seed, stream);
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    for (std::size_t i = 0; i < n; i += 2) {
        const double radius = std::sqrt(-2.0 * std::log(rng.uniform()));
        const double angle = kTwoPi * rng.uniform();
        out[i] = static_cast<float>(radius * std::cos(angle));
        if (i + 1 < n) out[i + 1] = static_cast<float>(radius * std::sin(angle));
    }
}

}  // namespace ropekit
