#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ropekit/core/error.hpp"
#include "ropekit/rope/exp_nonpositive.hpp"
#include "ropekit/rope/rope.hpp"

using namespace ropekit;

namespace {

std::vector<double> gaussian(std::mt19937_64& rng, std::size_t n) {
    std::normal_distribution<double> normal;
    std::vector<double> v(n);
    for (double& x : v) x = normal(rng);
    return v;
}

// q^T R^n k in long double from the definition: rotate k chunk-wise, dot with q.
long double reference_logit(const std::vector<double>& q, const std::vector<double>& k,
                            const Schedule& s, long double n) {
    long double total = 0;
    for (std::size_t c = 0; c < s.frequency_count(); ++c) {
        const auto [a, b] = s.chunk_dims(c);
        const long double angle = n * static_cast<long double>(s.inv_freq[c]);
        const long double ka = k[a] * cosl(angle) - k[b] * sinl(angle);
        const long double kb = k[a] * sinl(angle) + k[b] * cosl(angle);
        total += q[a] * ka + q[b] * kb;
    }
    return total;
}

}  // namespace

TEST_CASE("default frequencies are theta^(-2k/d), highest first") {
    const auto g = default_inv_freq(8, 10000.0);
    REQUIRE(g.size() == 4);
    CHECK(g[0] == 1.0);
    CHECK(g[1] == doctest::Approx(0.1).epsilon(1e-15));
    CHECK(g[2] == doctest::Approx(0.01).epsilon(1e-15));
    CHECK(g[3] == doctest::Approx(0.001).epsilon(1e-15));
    // Gemma's lowest frequency (paper.md: 1.0746e-4 for d = 256, theta = 1e4).
    CHECK(default_inv_freq(256, 1e4).back() == doctest::Approx(1.0746e-4).epsilon(1e-4));
}

TEST_CASE("chunk dims follow the layout") {
    const Schedule half = make_schedule(8, 1e4, Layout::half);
    const Schedule inter = make_schedule(8, 1e4, Layout::interleaved);
    CHECK(half.chunk_dims(0) == std::pair<std::size_t, std::size_t>{0, 4});
    CHECK(half.chunk_dims(3) == std::pair<std::size_t, std::size_t>{3, 7});
    CHECK(inter.chunk_dims(0) == std::pair<std::size_t, std::size_t>{0, 1});
    CHECK(inter.chunk_dims(3) == std::pair<std::size_t, std::size_t>{6, 7});
    const Schedule partial = make_schedule(8, 1e4, Layout::half, 4);
    CHECK(partial.frequency_count() == 2);
    CHECK(partial.chunk_dims(1) == std::pair<std::size_t, std::size_t>{1, 3});
}

TEST_CASE("bad schedules are usage errors") {
    CHECK_THROWS_AS(make_schedule(7, 1e4), Error);
    CHECK_THROWS_AS(make_schedule(8, 1e4, Layout::half, 10), Error);
    CHECK_THROWS_AS(make_schedule(8, 1.0), Error);
    CHECK_THROWS_AS(parse_layout("neox"), Error);
    CHECK(parse_layout("interleaved") == Layout::interleaved);
}

TEST_CASE("p-RoPE keeps floor(p*n) of the highest frequencies") {
    CHECK(prope_kept_count(0.75, 128) == 96);
    CHECK(prope_kept_count(0.3, 10) == 3);  // 0.3*10 is 2.9999999999999996 in double
    CHECK(prope_kept_count(0.25, 4) == 1);
    CHECK(prope_kept_count(0.0, 64) == 0);
    CHECK(prope_kept_count(1.0, 64) == 64);
    CHECK_THROWS_AS(prope_kept_count(1.5, 64), Error);
    CHECK_THROWS_AS(prope_kept_count(-0.1, 64), Error);
    CHECK_THROWS_AS(prope_kept_count(std::nan(""), 64), Error);

    const std::vector<double> g = {1, 0.1, 0.01, 0.001};
    CHECK(apply_prope(g, 0.5) == std::vector<double>{1, 0.1, 0, 0});
    CHECK(apply_prope(g, 0.5, true) == std::vector<double>{0, 0, 0.01, 0.001});
    CHECK(apply_prope(g, 0.75, true) == std::vector<double>{0, 0.1, 0.01, 0.001});
    CHECK(apply_prope(g, 0.0) == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("exp_nonpositive: within 2 ulp of exp on [-87.3, 0], 0 below and at -inf") {
    float worst_ulp = 0;
    for (int i = 0; i <= 873000; ++i) {
        const float x = -static_cast<float>(i) * 1e-4f;
        const double want = std::exp(static_cast<double>(x));
        const float got = exp_nonpositive(x);
        const double ulp =
            std::nextafter(static_cast<float>(want), 1e30f) - static_cast<float>(want);
        worst_ulp = std::max(worst_ulp, static_cast<float>(std::abs(got - want) / ulp));
    }
    CHECK(worst_ulp <= 2.0f);
    CHECK(exp_nonpositive(0.0f) == 1.0f);
    CHECK(exp_nonpositive(-87.4f) == 0.0f);
    CHECK(exp_nonpositive(-std::numeric_limits<float>::infinity()) == 0.0f);
}

TEST_CASE("frequencies divided by a dropping factor of 1e30 snap to exactly 0, others stay") {
    const std::vector<double> g = {1.0, 0.1 / 1e30, 1e-20, 2e-20, 0.0, 1e-4};
    CHECK(snap_dropped(g) == std::vector<double>{1.0, 0.0, 0.0, 2e-20, 0.0, 1e-4});
}

TEST_CASE("rotation is counter-clockwise by position * g, and unrotate inverts it") {
    Schedule s = make_schedule(2, 1e4);  // one frequency, g = 1
    double v[2] = {1.0, 0.0};
    rotate(v, s, M_PI / 2);
    CHECK(v[0] == doctest::Approx(0.0).epsilon(1e-15));
    CHECK(v[1] == doctest::Approx(1.0));

    std::mt19937_64 rng(7);
    const Schedule big = make_schedule(64, 5e5, Layout::interleaved);
    const auto base = gaussian(rng, 64);
    std::vector<float> x(base.begin(), base.end()), y = x;
    rotate(y.data(), big, 123456.0);
    unrotate(y.data(), big, 123456.0);
    for (std::size_t d = 0; d < x.size(); ++d) CHECK(y[d] == doctest::Approx(x[d]).epsilon(1e-5));
}

TEST_CASE("(R^i q)^T (R^j k) = q^T R^(j-i) k") {
    std::mt19937_64 rng(11);
    const Schedule s = make_schedule(128, 5e5);
    for (double i : {0.0, 3.0, 999.0, 1e6}) {
        for (double j : {0.0, 1.0, 4096.0, 7e5}) {
            auto q = gaussian(rng, 128), k = gaussian(rng, 128);
            const double expected = relative_logit(q.data(), k.data(), s, j - i);
            rotate(q.data(), s, i);
            rotate(k.data(), s, j);
            double dot = 0;
            for (std::size_t d = 0; d < 128; ++d) dot += q[d] * k[d];
            CHECK(dot == doctest::Approx(expected).epsilon(1e-9).scale(128));
        }
    }
}

TEST_CASE("relative logits stay accurate out to |n| = 1e7") {
    std::mt19937_64 rng(5);
    const Schedule s = make_schedule(256, 1e4);
    const auto q = gaussian(rng, 256), k = gaussian(rng, 256);
    for (double n : {-1e7, -123457.0, 1.0, 9999991.0, 1e7}) {
        const double got = relative_logit(q.data(), k.data(), s, n);
        const auto want = static_cast<double>(reference_logit(q, k, s, n));
        CHECK(std::abs(got - want) < 1e-8 * 256);
    }
}

TEST_CASE("all-ones q = k reproduces the paper's Figure 2a values") {
    // paper.md: d = 256, theta = 1e4, a(r)/d = 1.0, 0.972, 0.675, 0.456, 0.193, -0.029.
    const Schedule s = make_schedule(256, 1e4);
    const std::vector<double> ones(256, 1.0);
    const double offsets[] = {0, 1, 10, 100, 1000, 5000};
    const double expected[] = {1.0, 0.972, 0.675, 0.456, 0.193, -0.029};
    for (int i = 0; i < 6; ++i) {
        CAPTURE(offsets[i]);
        const double a = relative_logit(ones.data(), ones.data(), s, -offsets[i]) / 256.0;
        CHECK(std::abs(a - expected[i]) < 5e-4);
    }
}

TEST_CASE("attention factor scales rotated dims and unrotate divides it out") {
    Schedule s = make_schedule(4, 1e4);
    s.attention_factor = 2.0;
    float v[4] = {1, 2, 3, 4};
    rotate(v, s, 0.0);
    CHECK(v[0] == 2.0f);
    CHECK(v[3] == 8.0f);
    unrotate(v, s, 0.0);
    CHECK(v[0] == 1.0f);
    CHECK(v[3] == 4.0f);
}

TEST_CASE("rotating every head of a row at once gives the bits of rotating each head") {
    std::mt19937_64 rng(3);
    for (const Schedule& base :
         {make_schedule(16, 1e4, Layout::half), make_schedule(16, 5e5, Layout::interleaved),
          make_schedule(16, 1e4, Layout::half, 10)}) {
        Schedule s = base;
        s.attention_factor = 1.25;
        const std::size_t heads = 5, dim = 16;
        const auto g = gaussian(rng, heads * dim);
        std::vector<float> row(g.begin(), g.end()), each = row;
        rotate(row.data(), heads, dim, s, 4097.0);
        for (std::size_t h = 0; h < heads; ++h) rotate(&each[h * dim], s, 4097.0);
        CHECK(row == each);
        CHECK(row != std::vector<float>(g.begin(), g.end()));
    }
}
