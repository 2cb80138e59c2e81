#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "ropekit/rope/logit_curve.hpp"
#include "ropekit/rope/rope.hpp"

using namespace ropekit;

namespace {
std::vector<double> gaussian(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<double> v(n);
    for (double& x : v) x = normal(rng);
    return v;
}
}  // namespace

TEST_CASE("offset curves equal relative_logit at n = -offset") {
    const Schedule s = make_schedule(16, 100.0);
    const auto q = gaussian(16, 1), k = gaussian(16, 2);
    const std::vector<std::int64_t> offsets{0, 1, 2, 7, 1000, 123456};
    const auto curve = offset_curve(q.data(), k.data(), s, offsets);
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        CHECK(curve[i] == doctest::Approx(relative_logit(q.data(), k.data(), s,
                                                         -static_cast<double>(offsets[i])))
                              .epsilon(1e-12));
    }
}

TEST_CASE("a key rotated by +r (k = R^r q) peaks r tokens back: offset +r") {
    const Schedule s = make_schedule(32, 1e4);
    const auto q = gaussian(32, 3);
    for (std::int64_t r : {0, 1, 5, 40}) {
        CAPTURE(r);
        auto k = q;
        rotate(k.data(), s, static_cast<double>(r));
        const auto curve = offset_curve(q.data(), k.data(), s, offset_range(64));
        const CurvePeak peak = find_peak(curve);
        CHECK(peak.argmax == static_cast<std::size_t>(r));
        double norm2 = 0;
        for (double x : q) norm2 += x * x;
        CHECK(peak.peak == doctest::Approx(norm2).epsilon(1e-12));
        CHECK(peak.margin > 0);
    }
}

TEST_CASE("keys identical, query rotated by +g: the logit peaks at the NEXT token (offset -1)") {
    const Schedule s = make_schedule(32, 1e4);
    const auto psi = gaussian(32, 4);
    auto q = psi;
    rotate(q.data(), s, 1.0);
    const std::vector<std::int64_t> offsets{-3, -2, -1, 0, 1, 2, 3};
    const auto curve = offset_curve(q.data(), psi.data(), s, offsets);
    CHECK(offsets[find_peak(curve).argmax] == -1);
    // And the previous-token construction (key rotated instead) peaks at offset +1.
    auto k = psi;
    rotate(k.data(), s, 1.0);
    CHECK(offsets[find_peak(offset_curve(psi.data(), k.data(), s, offsets)).argmax] == 1);
}

TEST_CASE("find_peak reports runner-up and margin") {
    const CurvePeak p = find_peak({1.0, 4.0, 3.0, 2.0});
    CHECK(p.argmax == 1);
    CHECK(p.peak == 4.0);
    CHECK(p.runner_up == 3.0);
    CHECK(p.margin == doctest::Approx(0.25));
}
