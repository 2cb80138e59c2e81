// The Llama forward pass, the llama2.c loader, generation and NLL, checked against a naive
// double-precision reference written here from llama2.c's published maths, and against the
// reference greedy continuation of the real stories260K model (issue 6).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/error.hpp"
#include "ropekit/model/llama2c.hpp"
#include "ropekit/model/token_nll.hpp"
#include "ropekit/model/token_sampling.hpp"
#include "ropekit/rope/attention.hpp"
#include "tiny_llama.hpp"

using namespace ropekit;
using namespace tiny_llama;
namespace fs = std::filesystem;

namespace {

std::string load_error(const std::string& path) {
    try {
        load_llama2c(path);
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::data);
        const std::string message = e.what();
        CHECK(message.find('\n') == std::string::npos);
        CHECK(message.rfind(path + ": ", 0) == 0);
        return message;
    }
    FAIL("loaded a bad checkpoint");
    return "";
}

std::vector<float> all_logits(const LlamaModel& m, const std::vector<std::int64_t>& ids,
                              std::size_t batch) {
    const std::size_t T = ids.size() / batch;
    const auto hidden = m.forward(ids.data(), batch, T);
    std::vector<float> logits(batch * T * m.config().vocab_size);
    m.logits(hidden.data(), batch * T, logits.data());
    return logits;
}

}  // namespace

TEST_CASE(
    "the forward pass matches a naive double reference (GQA, shared and separate classifier)") {
    TempDir dir;
    for (bool shared : {true, false}) {
        CAPTURE(shared);
        TinyShape shape;
        shape.shared = shared;
        const TinyCheckpoint c = make_tiny(shape, shared ? 1u : 2u);
        write_tiny(c, dir.file("tiny.bin"));
        const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
        CHECK(m.config().head_dim == 4);
        CHECK(m.config().shared_classifier == shared);
        CHECK(m.name() == "tiny");
        CHECK(m.schedule().layout == Layout::interleaved);
        // Two sequences in one batch, longer than seq_len (RoPE has no such limit).
        const std::vector<std::int64_t> ids = {1, 5, 3, 3, 10, 0, 7, 2, 9, 4,
                                               1, 2, 2, 8, 6,  6, 0, 1, 5, 3};
        const auto logits = all_logits(m, ids, 2);
        double worst = 0;
        for (std::size_t b = 0; b < 2; ++b) {
            const std::vector<std::int64_t> one(ids.begin() + b * 10, ids.begin() + b * 10 + 10);
            const auto ref = reference_logits(c, one);
            for (std::size_t t = 0; t < 10; ++t) {
                for (std::size_t v = 0; v < 11; ++v) {
                    worst = std::max(worst, std::abs(ref[t][v] - logits[(b * 10 + t) * 11 + v]));
                }
            }
        }
        CHECK(worst < 2e-5);  // float32 GEMMs against double: a few ulps of O(1) logits
    }
}

TEST_CASE("decoding with a KV cache gives the prefill logits, and observers see every layer") {
    TempDir dir;
    const TinyCheckpoint c = make_tiny(TinyShape{}, 3);
    write_tiny(c, dir.file("tiny.bin"));
    const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
    const std::vector<std::int64_t> ids = {1, 4, 4, 9, 2, 7};
    const auto prefill = all_logits(m, ids, 1);
    KVCache cache(m.config(), 1, ids.size());
    std::vector<float> step(11);
    double worst = 0;
    for (std::size_t t = 0; t < ids.size(); ++t) {
        const auto hidden = m.forward(&ids[t], 1, 1, {}, &cache);
        m.logits(hidden.data(), 1, step.data());
        for (std::size_t v = 0; v < 11; ++v) {
            worst = std::max(worst, static_cast<double>(std::abs(step[v] - prefill[t * 11 + v])));
        }
    }
    CHECK(cache.length() == ids.size());
    CHECK(worst < 1e-5);

    ForwardOptions options;
    options.keep_scores = options.keep_pattern = true;
    std::vector<std::size_t> seen;
    options.observer = [&](const LayerActivations& a) {
        seen.push_back(a.layer);
        CHECK(a.tokens == 6);
        CHECK(a.keys == 6);
        // rot_q = R^pos q for each head, pattern rows are causal softmaxes of the scores.
        std::vector<float> q(a.q + 5 * 16, a.q + 5 * 16 + 4);
        rotate(q.data(), m.schedule(), 5.0);
        for (int i = 0; i < 4; ++i)
            CHECK(q[i] == doctest::Approx(a.rot_q[5 * 16 + i]).epsilon(1e-6));
        const float* row = a.pattern + 3 * 36 + 2 * 6;  // head 3, query 2
        CHECK(row[0] + row[1] + row[2] == doctest::Approx(1.0).epsilon(1e-6));
        CHECK(row[3] == 0.0f);
        CHECK(std::isinf(a.scores[3 * 36 + 2 * 6 + 3]));
        const double e0 = std::exp(a.scores[3 * 36 + 12] - a.scores[3 * 36 + 13]);
        CHECK(row[0] / row[1] == doctest::Approx(e0).epsilon(1e-5));
    };
    m.forward(ids.data(), 1, ids.size(), options);
    CHECK(seen == std::vector<std::size_t>{0, 1});
}

TEST_CASE("a batch continued through a KV cache in uneven chunks gives the prefill logits") {
    TempDir dir;
    write_tiny(make_tiny(TinyShape{}, 11), dir.file("tiny.bin"));
    const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
    const std::size_t T = 6, vocab = 11;
    const std::vector<std::int64_t> ids = {1, 4, 4, 9, 2, 7, 1, 8, 3, 3, 0, 5};
    const auto prefill = all_logits(m, ids, 2);
    KVCache cache(m.config(), 2, T);
    std::vector<std::size_t> starts;
    ForwardOptions options;
    options.observer = [&](const LayerActivations& a) {
        if (a.layer == 0) starts.push_back(a.start);
    };
    double worst = 0;
    for (const auto& [start, count] : {std::pair<std::size_t, std::size_t>{0, 2}, {2, 3}, {5, 1}}) {
        std::vector<std::int64_t> chunk;  // [2, count]: positions start .. start+count-1 of both
        for (std::size_t b = 0; b < 2; ++b) {
            chunk.insert(chunk.end(), &ids[b * T + start], &ids[b * T + start + count]);
        }
        const auto hidden = m.forward(chunk.data(), 2, count, options, &cache);
        std::vector<float> logits(2 * count * vocab);
        m.logits(hidden.data(), 2 * count, logits.data());
        for (std::size_t b = 0; b < 2; ++b) {
            for (std::size_t i = 0; i < count * vocab; ++i) {
                const float expected = prefill[(b * T + start) * vocab + i];
                worst = std::max(worst, double(std::abs(logits[b * count * vocab + i] - expected)));
            }
        }
    }
    CHECK(cache.length() == T);
    CHECK(starts == std::vector<std::size_t>{0, 2, 5});
    CHECK(worst < 1e-5);
    const std::int64_t one[2] = {1, 1};
    CHECK_THROWS_AS(m.forward(one, 2, 1, {}, &cache), std::invalid_argument);  // cache is full
}

TEST_CASE("a p = 1 schedule override changes nothing; p = 0 removes all position information") {
    TempDir dir;
    TinyShape one_layer;  // with more layers earlier positions see different prefixes
    one_layer.layers = 1;
    write_tiny(make_tiny(one_layer, 4), dir.file("tiny.bin"));
    const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
    const std::vector<std::int64_t> ids = {1, 3, 3, 3};
    const Schedule same = apply_prope(m.schedule(), 1.0), nope = apply_prope(m.schedule(), 0.0);
    ForwardOptions options;
    options.schedule = &same;
    CHECK(m.forward(ids.data(), 1, 4, options) == m.forward(ids.data(), 1, 4));
    // Position 0 sees only itself at angle 0: identical under any schedule.
    options.schedule = &nope;
    const auto h = m.forward(ids.data(), 1, 4, options), base = m.forward(ids.data(), 1, 4);
    for (int i = 0; i < 16; ++i) CHECK(h[i] == doctest::Approx(base[i]).epsilon(1e-6));
    // Without rotation attention is order-blind: swapping two earlier tokens leaves the last
    // position's output of a one-layer model unchanged, while with RoPE it changes it.
    const std::vector<std::int64_t> a = {1, 2, 5, 7}, b = {1, 5, 2, 7};
    const auto ha = m.forward(a.data(), 1, 4, options), hb = m.forward(b.data(), 1, 4, options);
    for (int i = 0; i < 16; ++i) CHECK(ha[48 + i] == doctest::Approx(hb[48 + i]).epsilon(1e-5));
    const auto ra = m.forward(a.data(), 1, 4), rb = m.forward(b.data(), 1, 4);
    double diff = 0;
    for (int i = 0; i < 16; ++i) diff += std::abs(ra[48 + i] - rb[48 + i]);
    CHECK(diff > 1e-3);  // with RoPE the order matters
}

TEST_CASE("bad llama2.c checkpoints are one-line data errors") {
    TempDir dir;
    const TinyCheckpoint c = make_tiny(TinyShape{}, 5);
    write_tiny(c, dir.file("cut.bin"), 4);
    CHECK(load_error(dir.file("cut.bin")).find("truncated") != std::string::npos);
    write_tiny(c, dir.file("tiny.bin"));
    { std::ofstream(dir.file("tiny.bin"), std::ios::app) << "xx"; }
    CHECK(load_error(dir.file("tiny.bin")).find("trailing data") != std::string::npos);
    { std::ofstream(dir.file("short.bin"), std::ios::binary) << "abc"; }
    CHECK(load_error(dir.file("short.bin")).find("28-byte") != std::string::npos);
    CHECK(load_error(dir.file("missing.bin")).find("cannot open") != std::string::npos);

    TinyShape gqa;
    gqa.kv_heads = 3;  // does not divide 4 query heads
    write_tiny(make_tiny(gqa, 6), dir.file("gqa.bin"));
    CHECK(load_error(dir.file("gqa.bin")).find("n_kv_heads (3) to divide n_heads (4)") !=
          std::string::npos);
    const int header[7] = {16, 24, -2, 4, 2, 11, 8};
    std::ofstream(dir.file("absurd.bin"), std::ios::binary)
        .write(reinterpret_cast<const char*>(header), sizeof header);
    CHECK(load_error(dir.file("absurd.bin")).find("n_layers in [1, 4096], found -2") !=
          std::string::npos);
    const int huge[7] = {1 << 16, 1 << 18, 4096, 4096, 4096, 1 << 22, 1 << 24};
    std::ofstream(dir.file("huge.bin"), std::ios::binary)
        .write(reinterpret_cast<const char*>(huge), sizeof huge);
    CHECK(load_error(dir.file("huge.bin")).find("truncated") != std::string::npos);
}

TEST_CASE("token ids outside the vocabulary are data errors") {
    TempDir dir;
    write_tiny(make_tiny(TinyShape{}, 7), dir.file("tiny.bin"));
    const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
    const std::vector<std::int64_t> ids = {1, 11};
    CHECK_THROWS_WITH_AS(m.forward(ids.data(), 1, 2),
                         "tokens: token id 11 is outside the vocabulary [0, 11)", Error);
}

TEST_CASE("negative log-softmax and the token picker, by hand") {
    const float logits[3] = {0.0f, static_cast<float>(std::log(3.0)), -1e30f};
    CHECK(negative_log_softmax(logits, 3, 1) == doctest::Approx(std::log(4.0 / 3.0)));
    CHECK(negative_log_softmax(logits, 3, 0) == doctest::Approx(std::log(4.0)));
    CHECK(pick_token(logits, 3, 0.0, 0.99) == 1);
    // p = (1/4, 3/4, 0): u below 1/4 picks 0, above picks 1.
    CHECK(pick_token(logits, 3, 1.0, 0.2) == 0);
    CHECK(pick_token(logits, 3, 1.0, 0.3) == 1);
    CHECK(pick_token(logits, 3, 1.0, 0.999999) == 1);
    // Temperature 0.5 squares the odds: (1/10, 9/10).
    CHECK(pick_token(logits, 3, 0.5, 0.09) == 0);
    CHECK(pick_token(logits, 3, 0.5, 0.11) == 1);
    const float tie[3] = {2.0f, 2.0f, 1.0f};
    CHECK(pick_token(tie, 3, 0.0, 0.0) == 0);  // first maximum, as llama2.c's argmax
}

TEST_CASE("log-sum-exp over blocks: a later block raising the maximum, -inf entries, one pass") {
    // ln(e^1 + e^2 + e^0.5 + e^30 + 0) computed in double by hand, the blocks in any order.
    const float first[3] = {1.0f, 2.0f, -std::numeric_limits<float>::infinity()};
    const float second[2] = {0.5f, 30.0f};
    const double want =
        30.0 + std::log1p(std::exp(1.0 - 30) + std::exp(2.0 - 30) + std::exp(0.5 - 30));
    LogSumExp ab, ba, whole;
    ab.add(first, 3);
    ab.add(second, 2);
    ba.add(second, 2);
    ba.add(first, 3);
    const float all[5] = {1.0f, 2.0f, -std::numeric_limits<float>::infinity(), 0.5f, 30.0f};
    whole.add(all, 5);
    for (const LogSumExp* sum : {&ab, &ba, &whole})
        CHECK(sum->value() == doctest::Approx(want).epsilon(1e-12));
    // Only -inf so far, then real values.
    LogSumExp empty;
    const float none[2] = {-std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity()};
    empty.add(none, 2);
    CHECK(empty.value() == -std::numeric_limits<double>::infinity());
    empty.add(second, 2);
    CHECK(empty.value() == doctest::Approx(30.0 + std::log1p(std::exp(0.5 - 30))).epsilon(1e-12));
    // Many values: a uniform row of 1000 gives ln 1000 + the value.
    const std::vector<float> flat(1000, -3.0f);
    LogSumExp many;
    many.add(flat.data(), flat.size());
    CHECK(many.value() == doctest::Approx(std::log(1000.0) - 3.0).epsilon(1e-7));
}

TEST_CASE("sampling is seeded, starts at BOS, and does not depend on the batch size") {
    TempDir dir;
    write_tiny(make_tiny(TinyShape{}, 8), dir.file("tiny.bin"));
    const LlamaModel m = load_llama2c(dir.file("tiny.bin"));
    SampleSpec spec;
    spec.count = 5;
    spec.length = 7;
    spec.temperature = 1.0;
    spec.seed = 42;
    spec.batch = 2;
    const auto a = sample_sequences(m, spec);
    spec.batch = 5;
    const auto b = sample_sequences(m, spec);
    CHECK(a.data == b.data);
    for (std::size_t i = 0; i < 5; ++i) CHECK(a({i, 0}) == 1);
    spec.seed = 43;
    CHECK(sample_sequences(m, spec).data != a.data);
    // Greedy decoding: each next token is the argmax of the prefill logits of its prefix.
    spec.temperature = 0.0;
    spec.count = 1;
    const auto g = sample_sequences(m, spec);
    const auto logits = all_logits(m, g.data, 1);
    for (std::size_t t = 0; t + 1 < 7; ++t) {
        const float* row = &logits[t * 11];
        CHECK(g({0, t + 1}) == std::max_element(row, row + 11) - row);
    }
}

TEST_CASE("rectangular causal scores are the last rows of the square ones") {
    std::mt19937 rng(9);
    std::normal_distribution<float> normal;
    std::vector<float> q(5 * 3), k(5 * 3);
    for (auto& x : q) x = normal(rng);
    for (auto& x : k) x = normal(rng);
    std::vector<float> square(25), last(2 * 5);
    causal_scores(q.data(), 3, k.data(), 3, 5, 3, 0.5f, square.data());
    causal_softmax(square.data(), 5);
    causal_scores(q.data() + 3 * 3, 3, k.data(), 3, 2, 5, 3, 0.5f, last.data());
    causal_softmax(last.data(), 2, 5);
    for (int i = 0; i < 10; ++i) CHECK(last[i] == square[15 + i]);
}

TEST_CASE("stories260K: greedy parity with llama2.c's reference continuation (issue 6)") {
    const std::string path = ROPEKIT_SHARED_DATA "/stories260K.bin";
    if (!fs::exists(path)) {
        MESSAGE("SKIPPED: " << path
                            << " is absent (download stories260K.bin from "
                               "karpathy/tinyllamas to run this parity test)");
        return;
    }
    const LlamaModel m = load_llama2c(path);
    SampleSpec spec;
    spec.count = 1;
    spec.length = 257;  // BOS + 256 greedy tokens
    const auto ids = sample_sequences(m, spec);
    const std::vector<std::int64_t> reference = {
        461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264,
        283, 452, 288, 13,  431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431,
        431, 293, 430, 417, 363, 416, 315, 342, 418, 424, 400, 442, 402, 303, 266, 299,
        374, 466, 396, 303, 271, 362, 390, 469, 306, 469, 423, 314, 347, 305, 356, 333};
    CHECK(ids.data[0] == 1);
    CHECK(std::vector<std::int64_t>(ids.data.begin() + 1, ids.data.begin() + 65) == reference);
    const auto hidden = m.forward(ids.ptr(), 1, 257);
    const auto nll = token_nll(m, hidden.data(), ids.ptr(), 1, 257);
    CHECK(nll[0] == 0.0);
    CHECK(std::abs(mean_nll(nll, 1, 257) - 0.980) < 1e-3);
}

TEST_CASE("causal_softmax matches a double-precision softmax to float accuracy") {
    std::mt19937 rng(10);
    std::uniform_real_distribution<float> spread(-120.0f, 30.0f);
    const std::size_t T = 67;  // not a multiple of the vector widths
    std::vector<float> scores(T * T);
    for (auto& x : scores) x = spread(rng);
    scores[5 * T + 2] = -std::numeric_limits<float>::infinity();  // a masked key in range
    const std::vector<float> original = scores;
    causal_softmax(scores.data(), T);
    double worst = 0;
    for (std::size_t i = 0; i < T; ++i) {
        double peak = -1e300, total = 0;
        for (std::size_t j = 0; j <= i; ++j) peak = std::max(peak, double(original[i * T + j]));
        for (std::size_t j = 0; j <= i; ++j) total += std::exp(original[i * T + j] - peak);
        for (std::size_t j = 0; j < T; ++j) {
            const double expected = j <= i ? std::exp(original[i * T + j] - peak) / total : 0.0;
            const double got = scores[i * T + j];
            // Relative to the row's largest probability: float rounding, and exponents below
            // e^-87 (relative 1e-38) flush to 0.
            worst = std::max(worst, std::abs(got - expected) / (1.0 / total));
        }
    }
    CHECK(worst < 1e-6);
    CHECK(scores[5 * T + 2] == 0.0f);
}
