#include <doctest/doctest.h>

#include <cmath>

#include "ropekit/analysis/key_construction.hpp"
#include "ropekit/core/error.hpp"

using namespace ropekit;

TEST_CASE("chunk specs are 1-based with 1 = highest frequency") {
    using V = std::vector<std::size_t>;
    CHECK(parse_chunk_spec("1-4", 128) == V{0, 1, 2, 3});
    CHECK(parse_chunk_spec("top:3", 8) == V{0, 1, 2});
    CHECK(parse_chunk_spec("bottom:3", 8) == V{5, 6, 7});
    CHECK(parse_chunk_spec("8,1,2-3", 8) == V{0, 1, 2, 7});
    CHECK(parse_chunk_spec("all", 3) == V{0, 1, 2});
    for (const char* bad : {"0", "9", "top:0", "top:9", "bottom:", "x", "3-2", "", "1,,2"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_chunk_spec(bad, 8), Error);
    }
}

TEST_CASE("keep_chunks zeroes the other chunks in the schedule's layout") {
    const Schedule s = make_schedule(8, 1e4, Layout::half);
    std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8};
    keep_chunks(v, s, {0, 3});  // half split: chunk 0 = dims (0, 4), chunk 3 = dims (3, 7)
    CHECK(v == std::vector<double>{1, 0, 0, 4, 5, 0, 0, 8});
}

TEST_CASE("construct_key peaks at the chosen offset with the hand-computed margin") {
    // d = 2, theta irrelevant: g = 1. q = (1, 0), offset 3: logit(o) = cos(3 - o).
    const Schedule s = make_schedule(2, 1e4);
    const KeyConstruction k = construct_key({1.0, 0.0}, s, 3, 7);
    CHECK(k.peak.argmax == 3);
    for (std::size_t o = 0; o < 7; ++o) {
        CHECK(k.logit[o] == doctest::Approx(std::cos(3.0 - double(o))).epsilon(1e-12));
    }
    CHECK(k.peak.margin == doctest::Approx(1 - std::cos(1.0)).epsilon(1e-12));
    CHECK(k.key[0] == doctest::Approx(std::cos(3.0)));
    CHECK(k.key[1] == doctest::Approx(std::sin(3.0)));
}

TEST_CASE("head specs") {
    CHECK(parse_head_spec("diagonal").offset == 0);
    CHECK(parse_head_spec("previous").offset == 1);
    CHECK(parse_head_spec("offset:17").offset == 17);
    for (const char* bad : {"next", "offset:", "offset:-1", "offset:x"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_head_spec(bad), Error);
    }
}

TEST_CASE("minimal scale: two offsets have a closed form") {
    // Logits {1, 0}: alpha = 1 / (1 + exp(-S)) >= 1 - eps  <=>  S >= ln((1 - eps) / eps).
    const HeadScale h = minimal_head_scale({1.0, 0.0}, 0, 0.1);
    CHECK(h.scale_min == doctest::Approx(std::log(9.0)).epsilon(1e-10));
    CHECK(h.scale_bound == doctest::Approx(std::log(9.0)).epsilon(1e-10));  // tight for N = 2
    CHECK(h.alpha_at_min >= 0.9);
    CHECK_THROWS_AS(minimal_head_scale({1.0, 1.0}, 0, 0.1), Error);  // a tie: no scale works
}

TEST_CASE("paper.md's diagonal head: d=256, theta=1e4, N=8192, equal chunk norms") {
    const Schedule s = make_schedule(256, 1e4);
    const std::vector<double> psi(256, 1.0);
    const double expected_min[] = {79.0, 164.9, 247.8}, expected_bound[] = {402, 488, 571};
    const double eps[] = {0.1, 0.01, 0.001};
    for (int i = 0; i < 3; ++i) {
        HeadOptions o;
        o.head = parse_head_spec("diagonal");
        o.tokens = 8192;
        o.epsilon = eps[i];
        const ConstructedHead h = build_head(psi, s, o);
        CHECK(std::abs(h.result.scale.scale_min - expected_min[i]) < 0.05);
        CHECK(std::abs(h.result.scale.scale_bound - expected_bound[i]) < 0.5);
        CHECK(h.result.scale.runner_up == doctest::Approx(0.97213).epsilon(1e-5));
    }
}

TEST_CASE("a built previous-token head attends one token back at every position") {
    const Schedule s = make_schedule(64, 1e4);
    HeadOptions o;
    o.head = parse_head_spec("previous");
    o.tokens = 300;
    o.epsilon = 0.05;
    const ConstructedHead h = build_head(std::vector<double>(64, 1.0), s, o);
    std::vector<float> scores(300 * 300), pattern(300 * 300);
    const double min_alpha = head_pattern(h, scores.data(), pattern.data());
    CHECK(min_alpha >= 0.95);
    CHECK(min_alpha < 0.951);  // the smallest scale: not far above the threshold
    CHECK(h.result.attn_scale == doctest::Approx(1.0 / 8.0));
    // Row 0 can only see itself.
    CHECK(pattern[0] == doctest::Approx(1.0));
}
