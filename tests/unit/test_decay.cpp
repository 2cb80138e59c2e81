#include <doctest/doctest.h>

#include <cmath>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"

using namespace ropekit;

TEST_CASE("ones: (2/d) sum_c cos(o g_c), paper Figure 2a values") {
    const Schedule s = make_schedule(256, 1e4);
    const DecayCurve c = ones_decay(s, figure_2a_offsets());
    const double printed[] = {1.0, 0.972, 0.675, 0.456, 0.193, -0.029};
    for (std::size_t i = 0; i < 6; ++i) CHECK(std::abs(c.activation[i] - printed[i]) < 5e-4);
    // d = 2: one chunk with g = 1, so activation(o) = cos(o).
    const DecayCurve two = ones_decay(make_schedule(2, 1e4), {0, 1, 2, 3});
    for (std::int64_t o = 0; o < 4; ++o) {
        CHECK(two.activation[static_cast<std::size_t>(o)] ==
              doctest::Approx(std::cos(static_cast<double>(o))));
    }
}

TEST_CASE("the accumulator averages hand-computed pairs") {
    // d = 2, g = 1. Pair 1: q = k = e0 -> cos(o) / 2. Pair 2: q = e1, k = e0 -> q^T R^(-o) k / 2
    // = (R^(-o) e0)_1 / 2 = -sin(o) / 2.
    const Schedule s = make_schedule(2, 1e4);
    DecayAccumulator acc(s, {0, 1, 2});
    const float q[] = {1, 0, 0, 1}, k[] = {1, 0, 1, 0};
    acc.add(q, k, 2);
    const DecayCurve c = acc.result();
    CHECK(c.samples == 2);
    for (std::size_t o = 0; o < 3; ++o) {
        const double x1 = std::cos(double(o)) / 2, x2 = -std::sin(double(o)) / 2;
        CHECK(c.activation[o] == doctest::Approx((x1 + x2) / 2).epsilon(1e-6));
        CHECK(c.std[o] == doctest::Approx(std::abs(x1 - x2) / std::sqrt(2.0)).epsilon(1e-5));
        CHECK(c.stderr_mean[o] == doctest::Approx(c.std[o] / std::sqrt(2.0)));
    }
}

TEST_CASE("gaussian pairs: mean near 0 and std 1/sqrt(d) at every offset (Prop. 3.2)") {
    const Schedule s = make_schedule(64, 1e4);
    const DecayCurve c = gaussian_decay(s, {0, 1, 10, 100, 1000, 5000}, 20000, 5, {}, true);
    for (std::size_t i = 0; i < c.offsets.size(); ++i) {
        CHECK(std::abs(c.activation[i]) < 5 * c.stderr_mean[i]);
        CHECK(c.std[i] == doctest::Approx(1.0 / 8.0).epsilon(0.03));
    }
    CHECK(check_no_decay(c).passed);
}

TEST_CASE("gaussian samples do not depend on the thread count; variance_se only on request") {
    const Schedule s = make_schedule(32, 1e4);
    const std::vector<std::int64_t> offsets{0, 3, 300};
    set_thread_count(1);
    const DecayCurve one = gaussian_decay(s, offsets, 3000, 9);
    set_thread_count(2);
    const DecayCurve two = gaussian_decay(s, offsets, 3000, 9, {}, true);
    set_thread_count(0);
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        CHECK(one.activation[i] == doctest::Approx(two.activation[i]).epsilon(1e-12));
        CHECK(one.std[i] == doctest::Approx(two.std[i]).epsilon(1e-12));
    }
    CHECK(one.variance_se.empty());
    CHECK(two.variance_se.size() == offsets.size());
    CHECK_THROWS(check_no_decay(one));
    // The repeated-gaussian pair is pair 0 of the same streams.
    const DecayCurve pair0 = gaussian_decay(s, offsets, 1, 9);
    const DecayCurve repeated = repeated_gaussian_decay(s, offsets, 9);
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        CHECK(repeated.activation[i] == doctest::Approx(pair0.activation[i]).epsilon(1e-12));
    }
}

TEST_CASE("the check fails for a decaying curve and for unequal spread") {
    DecayCurve c;
    c.offsets = {0, 1, 2, 3};
    c.samples = 100;
    c.activation = {0.0, 0.0, 0.0, 0.0};
    c.std = {1, 1, 1, 1};
    c.stderr_mean = {0.1, 0.1, 0.1, 0.1};
    c.variance_se = {0.1, 0.1, 0.1, 0.1};
    CHECK(check_no_decay(c).passed);
    c.activation[2] = 1.0;  // 10 standard errors
    DecayCheck bad = check_no_decay(c);
    CHECK_FALSE(bad.passed);
    CHECK(bad.worst_mean_offset == 2);
    c.activation[2] = 0.0;
    c.std[3] = 3;  // variance 9 against an average of 3
    bad = check_no_decay(c);
    CHECK_FALSE(bad.passed);
    CHECK(bad.worst_spread_offset == 3);
}

TEST_CASE("normal quantiles") {
    CHECK(two_sided_normal_quantile(0.05) == doctest::Approx(1.959964).epsilon(1e-6));
    CHECK(two_sided_normal_quantile(1e-3) == doctest::Approx(3.290527).epsilon(1e-6));
}

TEST_CASE("offset lists") {
    using V = std::vector<std::int64_t>;
    CHECK(parse_offsets("0,1,10") == V{0, 1, 10});
    CHECK(parse_offsets("0-3") == V{0, 1, 2, 3});
    CHECK(parse_offsets("0-10:5,100") == V{0, 5, 10, 100});
    for (const char* bad : {"", "a", "-1", "3-1", "1,,2", "0-4:0"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_offsets(bad), Error);
    }
}

TEST_CASE("mode names round-trip") {
    for (const char* name : {"ones", "gaussian", "repeated-gaussian", "file"}) {
        CHECK(decay_mode_name(parse_decay_mode(name)) == name);
    }
    CHECK_THROWS_AS(parse_decay_mode("uniform"), Error);
}
