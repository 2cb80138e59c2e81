// Finite inputs at the edges of float32 give finite, exact results (issue 18): attention scores
// past the float range, decay curves of huge and subnormal pairs, and 16-bit outputs that would
// round to inf.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/attention.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;

TEST_CASE("attention of queries and keys near 1e20: one-hot where float SGEMM gives NaN") {
    // T = 3, d = 2, logits of +-1e40: row 1 is one-hot on key 0, row 2 splits keys 0 and 1.
    const std::vector<float> q = {1e20f, 0, 1e20f, 0, 0, 1e20f};
    const std::vector<float> k = {1e20f, 1e20f, -1e20f, 1e20f, 1e20f, -1e20f};
    std::vector<float> fast(9), exact(9);
    CHECK_FALSE(float_scores_fit(q.data(), 2, k.data(), 2, 3, 2, 1.0));
    causal_scores(q.data(), 2, k.data(), 2, 3, 2, 1.0f, fast.data());
    causal_softmax(fast.data(), 3);
    CHECK(std::isnan(fast[3]));  // inf - inf: why the double path exists
    causal_attention(q.data(), 2, k.data(), 2, 3, 2, 1.0, exact.data());
    const std::vector<float> expected = {1, 0, 0, 1, 0, 0, 0.5f, 0.5f, 0};
    for (std::size_t i = 0; i < 9; ++i) CHECK(exact[i] == doctest::Approx(expected[i]));
}

TEST_CASE("attention of ordinary values takes the float path, unchanged") {
    const std::vector<float> q = {0.5f, -1, 2, 0.25f}, k = {1, 1, -0.5f, 3};
    CHECK(float_scores_fit(q.data(), 2, k.data(), 2, 2, 2, 0.7));
    std::vector<float> fast(4), exact(4);
    causal_scores(q.data(), 2, k.data(), 2, 2, 2, 0.7f, fast.data());
    causal_softmax(fast.data(), 2);
    causal_attention(q.data(), 2, k.data(), 2, 2, 2, 0.7, exact.data());
    CHECK(fast == exact);
}

TEST_CASE("decay of huge and subnormal pairs equals the double computation") {
    // d = 2, g = 1: the pair q = k = (x, 0) gives x^2 cos(o) / 2 at offset o.
    const Schedule s = make_schedule(2, 1e4);
    for (float x : {3e38f, 1e30f, 1e-40f}) {
        DecayAccumulator acc(s, {0, 1});
        const float q[] = {x, 0, x, 0}, k[] = {x, 0, -x, 0};  // logits x^2 cos(o) / 2, negated
        acc.add(q, k, 2);
        const DecayCurve c = acc.result();
        const double v = static_cast<double>(x) * x / 2;
        INFO(x);
        CHECK(c.activation[0] == doctest::Approx(0.0).epsilon(1e-6));
        CHECK(c.std[0] == doctest::Approx(v * std::sqrt(2.0)).epsilon(1e-6));
        CHECK(c.std[1] == doctest::Approx(v * std::cos(1.0) * std::sqrt(2.0)).epsilon(1e-6));
        CHECK(std::isfinite(c.variance_se[0]));
    }
}

TEST_CASE("a value that rounds to inf in float16 or bfloat16 is an error naming where") {
    TempDir dir;
    H5Output out = H5Output::create(dir.file("x.h5"), {});
    Tensor<float> t({2, 3}, 1.0f);
    t.data[4] = 70000.0f;
    expect_error([&] { out.write("h", t, {}, "", DType::f16); }, ExitCode::data,
                 {"h: value 70000 at [1, 1] does not fit float16 (largest 65504)"});
    t.data[4] = std::numeric_limits<float>::max();
    expect_error([&] { out.write("b", t, {}, "", DType::bf16); }, ExitCode::data,
                 {"b: value", "does not fit bfloat16"});
    t.data[4] = -std::numeric_limits<float>::infinity();  // masked scores: stays -inf
    out.write("masked", t, {}, "", DType::f16);
}
