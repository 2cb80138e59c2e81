#include <stdexcept>
#include <vector>

#include <doctest/doctest.h>

#include "ropekit/analysis/freq_norms.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/dump/dump_reader.hpp"

using namespace ropekit;

TEST_CASE("--axes accepts permutations of pos, head, dim with an optional batch") {
    CHECK(parse_vector_axes("pos,head,dim").names ==
          std::vector<std::string>{"pos", "head", "dim"});
    CHECK_FALSE(parse_vector_axes("pos,head,dim").has_batch());
    VectorAxes a = parse_vector_axes("batch,head,pos,dim");
    CHECK(a.has_batch());
    CHECK(a.index("pos") == 2);
    for (const char* bad :
         {"pos,head", "pos,head,dim,dim", "batch,pos,head,d", "", "pos,,head,dim"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_vector_axes(bad), Error);
    }
}

TEST_CASE("--name: general templates, per-hook templates, one tensor per layer") {
    DumpNames n = parse_dump_names({"model.layers.{layer}.{hook}"}, std::nullopt);
    CHECK(n.template_for(Hook::q) == "model.layers.{layer}.{hook}");
    n = parse_dump_names({"q=L{layer}.q", "hook_k=L{layer}.k"}, std::nullopt);
    CHECK(n.template_for(Hook::q) == "L{layer}.q");
    CHECK(n.template_for(Hook::k) == "L{layer}.k");
    CHECK(n.template_for(Hook::pattern) == kDefaultNameTemplate);
    n = parse_dump_names({"attn{layer}"}, Hook::pattern);
    CHECK(n.template_for(Hook::pattern) == "attn{layer}");
    CHECK_THROWS_AS(parse_dump_names({"attn{layer}"}, std::nullopt), Error);
    CHECK_THROWS_AS(parse_dump_names({"no_layer"}, Hook::q), Error);
    CHECK_THROWS_AS(parse_dump_names({"v=x{layer}"}, Hook::q), Error);
}

TEST_CASE("top-quarter share counts the highest ceil(F/4) frequencies") {
    const std::vector<double> norms{3, 1, 1, 1, 1, 1, 1, 1};  // F = 8: indices 0, 1
    CHECK(top_quarter_share(norms.data(), 8) == doctest::Approx(4.0 / 10.0));
    const std::vector<double> five{1, 1, 1, 1, 1};  // ceil(5/4) = 2
    CHECK(top_quarter_share(five.data(), 5) == doctest::Approx(0.4));
    const std::vector<double> zero(4, 0.0);
    CHECK(top_quarter_share(zero.data(), 4) == 0);
}

TEST_CASE("bands stand far above both the layer's and the head's lower-half median") {
    // 2 heads x 8 frequencies; lower half = indices 4..7
    std::vector<double> layer{9, 9, 9, 9, 1, 1, 1, 5,   // head 0: a band at 7 (5 >= 4 x 1)
                              0, 0, 0, 0, 1, 1, 1, 3};  // head 1: 3 < 4 x 1, no band
    CHECK(find_bands(layer.data(), 2, 8, 0, 4.0) == std::vector<std::size_t>{7});
    CHECK(find_bands(layer.data(), 2, 8, 1, 4.0).empty());
    // high frequencies are never bands, however large
    CHECK(find_bands(layer.data(), 2, 8, 0, 1.5) == std::vector<std::size_t>{7});
    // a head whose whole lower half is large has no band, even if the layer's median is small
    std::vector<double> loud{0, 0, 0, 0, 0.1, 0.1, 0.1, 0.1,  //
                             0, 0, 0, 0, 0.1, 0.1, 0.1, 0.1,  //
                             0, 0, 0, 0, 5,   5,   5,   5};
    CHECK(find_bands(loud.data(), 3, 8, 2, 4.0).empty());
}

TEST_CASE("mean over heads averages each layer's heads") {
    Tensor<double> n({1, 2, 3});
    n.data = {1, 2, 3, 3, 4, 5};
    Tensor<double> m = mean_over_heads(n);
    CHECK(m.shape == Shape{1, 3});
    CHECK(m.data == std::vector<double>{2, 3, 4});
}

#include <cmath>

#include "ropekit/analysis/positional_heads.hpp"

TEST_CASE("offset masses and TransformerLens scores of a hand-computed 3x3 pattern") {
    const std::vector<float> a{1.0f, 0, 0, 0.2f, 0.8f, 0, 0.1f, 0.6f, 0.3f};
    PositionalOptions o;
    o.max_offset = 3;
    SequenceStats s = sequence_stats(a.data(), 3, o);
    CHECK(s.offset_mass[0] == doctest::Approx((1 + 0.8 + 0.3) / 3));
    CHECK(s.offset_mass[1] == doctest::Approx((0.2 + 0.6) / 2));
    CHECK(s.offset_mass[2] == doctest::Approx(0.1));
    CHECK(std::isnan(s.offset_mass[3]));
    CHECK(s.prev_mul == doctest::Approx(0.8 / 3));
    CHECK(s.prev_abs == doctest::Approx(1 - 3.4 / 3));
    CHECK(previous_token_score_mul(a.data(), 3, true, false) == doctest::Approx(0.6 / 1.7));
    CHECK(previous_token_score_mul(a.data(), 3, false, true) == doctest::Approx(0.8 / 0.9));
    // abs with the BOS column zeroed: row 1 keeps |0.8 - 0|, row 2 |0.6 - 1| + 0.3
    CHECK(previous_token_score_abs(a.data(), 3, true, false) == doctest::Approx(1 - 1.5 / 3));
    o.exclude_bos = true;
    s = sequence_stats(a.data(), 3, o);
    CHECK(s.offset_mass[0] == doctest::Approx((1.0 + 0.3 / 0.9) / 2));
    CHECK(s.offset_mass[1] == doctest::Approx(0.6 / 0.9));
    CHECK(std::isnan(s.offset_mass[2]));
}

TEST_CASE("the BOS note speaks only when --exclude-bos and the bos attribute disagree") {
    DumpAttributes a;
    CHECK(bos_note(a, true).empty());
    a.bos = 1;
    CHECK(bos_note(a, true).empty());
    CHECK(bos_note(a, false).find("--exclude-bos") != std::string::npos);
    a.bos = 0;
    CHECK(bos_note(a, false).empty());
    CHECK(bos_note(a, true).find("bos = 0") != std::string::npos);
}

TEST_CASE("freq-norms statistics pack, unpack and add with the unrotated dims' sums") {
    FreqNorms a;
    a.layers = {0, 1};
    a.q.sums = Tensor<double>({2, 1, 2});
    a.q.sums.data = {1, 2, 3, 4};
    a.k.sums = Tensor<double>({2, 1, 2});
    a.k.sums.data = {5, 6, 7, 8};
    a.q.unrotated_sums = Tensor<double>({2, 1});
    a.q.unrotated_sums.data = {9, 10};
    a.k.unrotated_sums = Tensor<double>({2, 1});
    a.k.unrotated_sums.data = {11, 12};
    a.positions = 4;
    const std::vector<double> packed = pack_freq_norms(a);
    CHECK(packed == std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 4});
    FreqNorms b = unpack_freq_norms(a, packed);
    CHECK(b.k.unrotated_sums.data == a.k.unrotated_sums.data);
    add_freq_norms(b, a);
    finish_freq_norms(b);
    CHECK(b.positions == 8);
    CHECK(b.q.unrotated_norms.data == std::vector<double>{18.0 / 8, 20.0 / 8});
    CHECK(b.k.norms.data == std::vector<double>{10.0 / 8, 12.0 / 8, 14.0 / 8, 16.0 / 8});
    CHECK_THROWS_AS(unpack_freq_norms(a, std::vector<double>(12)), std::logic_error);
}
