#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ropekit/core/normal_samples.hpp"
#include "ropekit/core/threads.hpp"

using namespace ropekit;

namespace {

constexpr std::size_t kStreams = 4096, kPerStream = 256, kN = kStreams * kPerStream;  // 2^20

std::vector<float> many_samples(std::uint64_t seed) {
    std::vector<float> x(kN);
    for (std::size_t s = 0; s < kStreams; ++s) {
        fill_standard_normal(seed, s, x.data() + s * kPerStream, kPerStream);
    }
    return x;
}

double moment(const std::vector<float>& x, int power) {
    double sum = 0;
    for (float v : x) sum += std::pow(static_cast<double>(v), power);
    return sum / static_cast<double>(x.size());
}

// Kolmogorov-Smirnov distance between the sample's empirical CDF and the standard normal CDF.
double ks_distance(std::vector<float> x) {
    std::sort(x.begin(), x.end());
    const double n = static_cast<double>(x.size());
    double d = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double cdf = 0.5 * std::erfc(-static_cast<double>(x[i]) / std::sqrt(2.0));
        d = std::max({d, static_cast<double>(i + 1) / n - cdf, cdf - static_cast<double>(i) / n});
    }
    return d;
}

double correlation(const float* a, const float* b, std::size_t n, std::size_t stride) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < n; i += stride)
        ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
    return ab / std::sqrt(aa * bb);
}

// Bounds at 5 standard errors of what a true N(0, 1) sample of kN = 2^20 gives (a correct
// sampler fails one with probability below 1e-6; the seed is fixed, so the outcome is too):
//   mean: SE 1/sqrt(N) = 0.00098;  variance: SE sqrt(2/N) = 0.0014;
//   E[x^4] = 3: SE sqrt((105 - 9)/N) = 0.0096;  correlations: SE 1/sqrt(pairs).
// KS: P(sqrt(N) D > 2.5) = 2 sum (-1)^(k-1) exp(-2 k^2 2.5^2) = 7.5e-6, so D < 2.5/sqrt(N).
constexpr double kMeanBound = 5.0 / 1024, kVarBound = 5.0 * 1.4142135623730951 / 1024,
                 kFourthBound = 5.0 * 9.797958971132712 / 1024, kKsBound = 2.5 / 1024;

}  // namespace

TEST_CASE("normal samples: moments and the KS distance of 2^20 samples match N(0, 1)") {
    const std::vector<float> x = many_samples(20261130);
    const double mean = moment(x, 1), second = moment(x, 2);
    CHECK(std::abs(mean) < kMeanBound);
    CHECK(std::abs(second - mean * mean - 1.0) < kVarBound);
    CHECK(std::abs(moment(x, 3)) < 5.0 * std::sqrt(15.0) / 1024);  // E x^3 = 0, Var x^3 = 15
    CHECK(std::abs(moment(x, 4) - 3.0) < kFourthBound);
    const double d = ks_distance(x);
    CHECK(d < kKsBound);
    // The tails reach past 4 sigma as often as they should: P(|x| > 4) = 6.334e-5, so 66.4
    // of 2^20 expected, Poisson sd 8.1; 5 sd either side.
    const auto tail = std::count_if(x.begin(), x.end(), [](float v) { return std::abs(v) > 4; });
    CHECK(std::abs(static_cast<double>(tail) - 66.4) < 5 * 8.15);
    MESSAGE("mean " << mean << ", var " << second - mean * mean << ", KS D " << d << " (bound "
                    << kKsBound << "), |x| > 4: " << tail);

    SUBCASE("controls: the same bounds catch a 2% scale error and a 0.01 shift") {
        std::vector<float> scaled(x), shifted(x);
        for (float& v : scaled) v *= 1.02f;
        for (float& v : shifted) v += 0.01f;
        CHECK(ks_distance(scaled) > kKsBound);
        CHECK(std::abs(moment(scaled, 2) - 1.0) > kVarBound);
        CHECK(std::abs(moment(shifted, 1)) > kMeanBound);
    }
}

TEST_CASE("normal samples: lanes, neighbours and streams are uncorrelated") {
    const std::vector<float> x = many_samples(7);
    // Within a stream: sample i with i + 1 (neighbouring lanes), i + 8 (the cos and sin of one
    // Box-Muller pair) and i + 16 (the same lane's next step); across streams s and s + 1.
    for (std::size_t lag : {1, 8, 16}) {
        CAPTURE(lag);
        const std::size_t n = kN - lag;
        CHECK(std::abs(correlation(x.data(), x.data() + lag, n, 1)) < 5.0 / std::sqrt(double(n)));
    }
    const std::size_t n = kN - kPerStream;
    CHECK(std::abs(correlation(x.data(), x.data() + kPerStream, n, 1)) <
          5.0 / std::sqrt(double(n)));
    // The squares too: Box-Muller's pair shares one radius, yet x^2 and y^2 are independent.
    std::vector<float> squares(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) squares[i] = x[i] * x[i] - 1.0f;
    CHECK(std::abs(correlation(squares.data(), squares.data() + 8, kN - 8, 16)) <
          5.0 / std::sqrt(double(kN / 16)));
}

TEST_CASE("normal samples: a stream depends on (seed, stream) only") {
    std::vector<float> all(1000), prefix(37), again(1000);
    fill_standard_normal(3, 5, all.data(), all.size());
    fill_standard_normal(3, 5, prefix.data(), prefix.size());
    CHECK(std::equal(prefix.begin(), prefix.end(), all.begin()));
    fill_standard_normal(4, 5, again.data(), again.size());
    CHECK(again != all);
    fill_standard_normal(3, 6, again.data(), again.size());
    CHECK(again != all);
    // Sampler v3's first numbers (bump the sampler attribute in decay.cpp if these change).
    std::vector<float> first(4);
    fill_standard_normal(3, 0, first.data(), first.size());
    CHECK(first == std::vector<float>{0.279692054f, -0.543925285f, 0.162523106f, 0.403031945f});
}

TEST_CASE("normal samples: streams filled on 1 or 2 threads, in any order, are the same") {
    const std::size_t streams = 301, d = 64;
    auto fill = [&](int threads, bool reverse) {
        std::vector<float> out(streams * d);
        set_thread_count(threads);
        parallel_for(streams, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) {
                const std::size_t s = reverse ? streams - 1 - i : i;
                fill_standard_normal(9, s, out.data() + s * d, d);
            }
        });
        set_thread_count(0);
        return out;
    };
    const std::vector<float> one = fill(1, false);
    CHECK(fill(2, false) == one);
    CHECK(fill(2, true) == one);
}
