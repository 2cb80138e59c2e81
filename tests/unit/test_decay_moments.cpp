#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/analysis/decay_moments.hpp"
#include "ropekit/core/normal_samples.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/rope/logit_curve.hpp"

using namespace ropekit;

namespace {

struct PerSample {
    std::vector<double> mean, std;
};

// Second implementation: every pair's curve in double (offset_curve), then the sample mean and
// the ddof = 1 standard deviation per offset, two-pass.
PerSample per_sample(const std::vector<float>& q, const std::vector<float>& k, const Schedule& s,
                     const std::vector<std::int64_t>& offsets) {
    const std::size_t d = s.head_dim, n = q.size() / d;
    std::vector<std::vector<double>> curves;
    for (std::size_t i = 0; i < n; ++i) {
        const std::vector<double> qd(q.begin() + i * d, q.begin() + (i + 1) * d);
        const std::vector<double> kd(k.begin() + i * d, k.begin() + (i + 1) * d);
        curves.push_back(offset_curve(qd.data(), kd.data(), s, offsets));
        for (double& x : curves.back()) x /= static_cast<double>(d);
    }
    PerSample out{std::vector<double>(offsets.size()), std::vector<double>(offsets.size())};
    for (std::size_t o = 0; o < offsets.size(); ++o) {
        double sum = 0, sq = 0;
        for (const auto& c : curves) sum += c[o];
        out.mean[o] = sum / static_cast<double>(n);
        for (const auto& c : curves) sq += (c[o] - out.mean[o]) * (c[o] - out.mean[o]);
        out.std[o] = std::sqrt(sq / static_cast<double>(n - 1));
    }
    return out;
}

// Gaussian pairs with k correlated to q (so the mean curve is far from 0 and decays).
void correlated_pairs(std::size_t n, std::size_t d, std::vector<float>& q, std::vector<float>& k) {
    q.resize(n * d);
    k.resize(n * d);
    fill_standard_normal(11, 0, q.data(), q.size());
    fill_standard_normal(11, 1, k.data(), k.size());
    for (std::size_t i = 0; i < q.size(); ++i) k[i] = 0.8f * q[i] + 0.6f * k[i] + 0.25f;
}

void check_equal(const DecayCurve& moments, const PerSample& reference) {
    for (std::size_t o = 0; o < reference.mean.size(); ++o) {
        CAPTURE(o);
        CHECK(moments.activation[o] == doctest::Approx(reference.mean[o]).epsilon(1e-9));
        CHECK(moments.std[o] == doctest::Approx(reference.std[o]).epsilon(1e-9));
        CHECK(moments.stderr_mean[o] ==
              doctest::Approx(reference.std[o] / std::sqrt(double(moments.samples))).epsilon(1e-9));
    }
}

}  // namespace

TEST_CASE("the moment formulation equals the per-sample curves on the same pairs to 1e-9") {
    const std::vector<std::int64_t> offsets{0, 1, 2, 5, 17, 100, 1000, 5000};
    std::vector<float> q, k;
    SUBCASE("RoPE, d = 64, 700 pairs (two blocks)") {
        const Schedule s = make_schedule(64, 1e4);
        correlated_pairs(700, 64, q, k);
        DecayMoments m = empty_decay_moments(s);
        accumulate(m, s, q.data(), k.data(), 700);
        CHECK(m.count == 700);
        check_equal(finish(m, s, offsets), per_sample(q, k, s, offsets));
    }
    SUBCASE("p-RoPE p = 0.5 (unrotated dims in the constant term), d = 32") {
        const Schedule s = apply_prope(make_schedule(32, 5e5), 0.5);
        correlated_pairs(300, 32, q, k);
        DecayMoments m = empty_decay_moments(s);
        accumulate(m, s, q.data(), k.data(), 300);
        check_equal(finish(m, s, offsets), per_sample(q, k, s, offsets));
    }
}

TEST_CASE("moments of hand-computed pairs") {
    // d = 2, g = 1. Pair 1: q = k = e0 -> cos(o) / 2. Pair 2: q = e1, k = e0 -> -sin(o) / 2.
    const Schedule s = make_schedule(2, 1e4);
    const float q[] = {1, 0, 0, 1}, k[] = {1, 0, 1, 0};
    DecayMoments m = empty_decay_moments(s);
    accumulate(m, s, q, k, 2);
    const DecayCurve c = finish(m, s, {0, 1, 2});
    CHECK(c.samples == 2);
    CHECK(c.variance_se.empty());
    for (std::size_t o = 0; o < 3; ++o) {
        const double x1 = std::cos(double(o)) / 2, x2 = -std::sin(double(o)) / 2;
        CHECK(c.activation[o] == doctest::Approx((x1 + x2) / 2).epsilon(1e-12));
        CHECK(c.std[o] == doctest::Approx(std::abs(x1 - x2) / std::sqrt(2.0)).epsilon(1e-12));
    }
    DecayMoments one = empty_decay_moments(s);
    accumulate(one, s, q, k, 1);
    const DecayCurve single = finish(one, s, {0, 1});
    CHECK(single.activation[1] == doctest::Approx(std::cos(1.0) / 2));
    CHECK(single.std.empty());
}

TEST_CASE("shards merge into the sums of one pass") {
    const Schedule s = make_schedule(16, 1e4);
    std::vector<float> q, k;
    correlated_pairs(100, 16, q, k);
    DecayMoments whole = empty_decay_moments(s), first = whole, second = whole;
    accumulate(whole, s, q.data(), k.data(), 100);
    accumulate(first, s, q.data(), k.data(), 40);
    accumulate(second, s, q.data() + 40 * 16, k.data() + 40 * 16, 60);
    merge(first, second);
    CHECK(first.count == 100);
    for (std::size_t i = 0; i < whole.sum.size(); ++i) {
        CHECK(first.sum[i] == doctest::Approx(whole.sum[i]).epsilon(1e-12));
    }
    for (std::size_t i = 0; i < whole.width; ++i) {  // DSYRK fills the upper triangle
        for (std::size_t j = i; j < whole.width; ++j) {
            const std::size_t at = i * whole.width + j;
            CHECK(first.sum_outer[at] == doctest::Approx(whole.sum_outer[at]).epsilon(1e-12));
        }
    }
}

TEST_CASE("packed sums travel between processes unchanged") {
    const Schedule s = make_schedule(8, 1e4);
    std::vector<float> q, k;
    correlated_pairs(30, 8, q, k);
    DecayMoments m = empty_decay_moments(s);
    accumulate(m, s, q.data(), k.data(), 30);
    const std::vector<double> packed = pack_decay_moments(m);
    CHECK(packed.size() == 1 + 9 + 9 * 10 / 2);  // count, sum, upper triangle
    const DecayMoments back = unpack_decay_moments(packed, s);
    CHECK(back.count == 30);
    CHECK(back.sum == m.sum);
    for (std::size_t i = 0; i < m.width; ++i) {
        for (std::size_t j = i; j < m.width; ++j) {
            CHECK(back.sum_outer[i * m.width + j] == m.sum_outer[i * m.width + j]);
        }
    }
    CHECK_THROWS(unpack_decay_moments(packed, make_schedule(16, 1e4)));
}

TEST_CASE("seeded normal samples: reproducible, independent streams, mean 0 and variance 1") {
    std::vector<float> a(100001), b(a.size()), c(a.size());
    fill_standard_normal(5, 0, a.data(), a.size());
    fill_standard_normal(5, 0, b.data(), b.size());
    fill_standard_normal(5, 1, c.data(), c.size());
    CHECK(a == b);
    double sum = 0, sq = 0, cross = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        sum += a[i];
        sq += double(a[i]) * a[i];
        cross += double(a[i]) * c[i];
    }
    const double n = double(a.size());
    CHECK(std::abs(sum / n) < 5 / std::sqrt(n));           // 5 standard errors
    CHECK(std::abs(sq / n - 1) < 5 * std::sqrt(2.0 / n));  // var of x^2 is 2
    CHECK(std::abs(cross / n) < 5 / std::sqrt(n));         // streams uncorrelated
}

TEST_CASE("--check's numbers: the tool's path against every pair's curve in double") {
    // The tool: mean, std and stderr from the moments; the variance's standard error (a fourth
    // moment per offset, which no fixed-size moment of c gives) from the float32 per-sample pass.
    const Schedule s = make_schedule(32, 1e4);
    const std::vector<std::int64_t> offsets{0, 1, 3, 10, 100, 1000};
    const std::size_t n = 2000;
    const DecayCurve tool = gaussian_decay(s, offsets, n, 4, {}, true);
    // The reference: the same pairs (streams 2i, 2i + 1), each pair's curve in double, central
    // moments two-pass, variance_se = sqrt((m4 - m2^2) / n) as decay.hpp documents.
    std::vector<float> q(n * 32), k(n * 32);
    for (std::size_t i = 0; i < n; ++i) {
        fill_standard_normal(4, 2 * i, q.data() + i * 32, 32);
        fill_standard_normal(4, 2 * i + 1, k.data() + i * 32, 32);
    }
    const PerSample ref = per_sample(q, k, s, offsets);
    DecayCurve expected = tool;
    expected.activation = ref.mean;
    expected.std = ref.std;
    for (std::size_t o = 0; o < offsets.size(); ++o) {
        double m2 = 0, m4 = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::vector<double> qd(q.begin() + i * 32, q.begin() + (i + 1) * 32);
            const std::vector<double> kd(k.begin() + i * 32, k.begin() + (i + 1) * 32);
            const double x = offset_curve(qd.data(), kd.data(), s, {offsets[o]})[0] / 32;
            const double dev2 = (x - ref.mean[o]) * (x - ref.mean[o]);
            m2 += dev2 / double(n);
            m4 += dev2 * dev2 / double(n);
        }
        expected.stderr_mean[o] = ref.std[o] / std::sqrt(double(n));
        expected.variance_se[o] = std::sqrt((m4 - m2 * m2) / double(n));
        CAPTURE(o);
        CHECK(tool.activation[o] == doctest::Approx(expected.activation[o]).epsilon(1e-9));
        CHECK(tool.std[o] == doctest::Approx(expected.std[o]).epsilon(1e-9));
        // float32 logits (coefficients and table rounded to 2^-24 relative): ~1e-7 per logit,
        // so 1e-5 leaves two orders of margin; a wrong formula would be off by far more.
        CHECK(tool.variance_se[o] == doctest::Approx(expected.variance_se[o]).epsilon(1e-5));
    }
    const DecayCheck a = check_no_decay(tool), b = check_no_decay(expected);
    CHECK(a.max_mean_z == doctest::Approx(b.max_mean_z).epsilon(1e-9));
    CHECK(a.worst_mean_offset == b.worst_mean_offset);
    CHECK(a.max_spread_z == doctest::Approx(b.max_spread_z).epsilon(1e-5));
    CHECK(a.worst_spread_offset == b.worst_spread_offset);
    CHECK(a.passed == b.passed);
}

TEST_CASE("the curves are the same bits on 1 and 2 threads") {
    // Our threads split the sums' panels and the offsets into fixed pieces (not one per thread),
    // each a single-threaded BLAS call: the numbers do not depend on the thread count. Two blocks
    // of pairs, three chunks of offsets.
    const Schedule s = make_schedule(64, 1e4);
    std::vector<std::int64_t> offsets(1500);
    for (std::size_t i = 0; i < offsets.size(); ++i) offsets[i] = std::int64_t(i) * 3;
    set_thread_count(1);
    const DecayCurve one = gaussian_decay(s, offsets, 700, 2, {}, true);
    set_thread_count(2);
    const DecayCurve two = gaussian_decay(s, offsets, 700, 2, {}, true);
    set_thread_count(0);
    CHECK(one.activation == two.activation);
    CHECK(one.std == two.std);
    CHECK(one.stderr_mean == two.stderr_mean);
    // The per-sample pass (--check) sums each offset over the pairs in the same order too.
    CHECK(one.variance_se == two.variance_se);
}
