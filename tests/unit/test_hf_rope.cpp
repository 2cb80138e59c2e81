#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"
#include "ropekit/rope/hf_rope.hpp"

using namespace ropekit;
using Json = nlohmann::ordered_json;

namespace {

Schedule schedule_of(const std::string& text, std::optional<double> seq_len = std::nullopt) {
    return hf_schedule(parse_hf_rope_config(Json::parse(text), "config.json").global(), seq_len);
}

std::string error_of(const std::string& text) {
    try {
        const HfRopeConfig c = parse_hf_rope_config(Json::parse(text), "config.json");
        for (const auto& [type, params] : c.by_layer_type) hf_schedule(params);
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::data);
        return e.what();
    }
    return "no error";
}

}  // namespace

TEST_CASE("default rope: theta^(-2k/d), head_dim falling back to hidden_size / heads") {
    // d = 8, theta = 1e4: g_k = 10^-k exactly.
    const Schedule s = schedule_of(R"({"hidden_size": 32, "num_attention_heads": 4,
                                       "rope_theta": 10000.0})");
    CHECK(s.head_dim == 8);
    CHECK(s.rotary_dim == 8);
    CHECK(s.layout == Layout::half);
    REQUIRE(s.inv_freq.size() == 4);
    for (std::size_t k = 0; k < 4; ++k) {
        CHECK(s.inv_freq[k] ==
              doctest::Approx(std::pow(10.0, -static_cast<double>(k))).epsilon(1e-15));
    }
    CHECK(s.attention_factor == 1.0);
    // rope_theta missing: transformers' default_theta 10000.
    CHECK(schedule_of(R"({"head_dim": 8})").inv_freq[1] == doctest::Approx(0.1).epsilon(1e-15));
}

TEST_CASE("partial_rotary_factor rotates the first int(d * f) dims with exponent over that dim") {
    // head_dim 8, factor 0.5: rotary_dim 4, g = 1, 10000^(-2/4) = 0.01.
    const Schedule s =
        schedule_of(R"({"head_dim": 8, "partial_rotary_factor": 0.5, "rope_theta": 1e4})");
    CHECK(s.rotary_dim == 4);
    REQUIRE(s.inv_freq.size() == 2);
    CHECK(s.inv_freq[1] == doctest::Approx(0.01).epsilon(1e-15));
    // v5 puts it inside rope_parameters.
    const Schedule v5 = schedule_of(R"({"head_dim": 8, "rope_parameters": {"rope_type": "default",
        "rope_theta": 1e4, "partial_rotary_factor": 0.5}})");
    CHECK(v5.rotary_dim == 4);
}

TEST_CASE("gpt_neox: rotary_pct and rotary_emb_base as GPTNeoXConfig reads them in v4 and v5") {
    // v4: rotary_pct / rotary_emb_base win over the partial_rotary_factor / rope_theta that
    // v4.45+ also saves; 0.25 and 10000 when absent.
    const Schedule v4 = schedule_of(R"({"model_type": "gpt_neox", "hidden_size": 64,
        "num_attention_heads": 4, "rotary_pct": 0.5, "rotary_emb_base": 100,
        "partial_rotary_factor": 1.0, "rope_theta": 1e4})");
    CHECK(v4.rotary_dim == 8);
    REQUIRE(v4.inv_freq.size() == 4);
    CHECK(v4.inv_freq[1] == doctest::Approx(std::pow(100.0, -0.25)).epsilon(1e-15));
    const Schedule pythia = schedule_of(R"({"model_type": "gpt_neox", "hidden_size": 64,
        "num_attention_heads": 4})");
    CHECK(pythia.rotary_dim == 4);
    CHECK(pythia.inv_freq[1] == doctest::Approx(0.01).epsilon(1e-15));
    // v5: rope_parameters' own keys first (setdefault), then rotary_pct, then 0.25.
    const Schedule v5 = schedule_of(R"({"model_type": "gpt_neox", "hidden_size": 64,
        "num_attention_heads": 4, "rotary_pct": 0.5, "rope_parameters": {"rope_type":
        "default", "rope_theta": 100}})");
    CHECK(v5.rotary_dim == 8);
    CHECK(v5.inv_freq[1] == doctest::Approx(std::pow(100.0, -0.25)).epsilon(1e-15));
    // Other model types never read these keys.
    CHECK(schedule_of(R"({"head_dim": 16, "rotary_pct": 0.25})").rotary_dim == 16);
    CHECK(error_of(R"({"model_type": "gpt_neox", "hidden_size": 64, "num_attention_heads": 4,
        "rotary_pct": "a quarter"})")
              .find("rotary_pct: expected a number") != std::string::npos);
}

TEST_CASE("linear divides every frequency by factor; v4 'type' and 'rope_type' both work") {
    for (const char* key : {"type", "rope_type"}) {
        const Schedule s =
            schedule_of(std::string(R"({"head_dim": 8, "rope_theta": 1e4, "rope_scaling": {")") +
                        key + R"(": "linear", "factor": 4.0}})");
        CHECK(s.inv_freq[0] == doctest::Approx(0.25));
        CHECK(s.inv_freq[2] == doctest::Approx(0.0025));
    }
}

TEST_CASE("dynamic NTK: default up to max_position_embeddings, rebased theta beyond") {
    const std::string cfg = R"({"head_dim": 4, "rope_theta": 1e4, "max_position_embeddings": 100,
                                "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}})";
    // seq 50 (and at init): base unchanged, g = 1, 0.01.
    CHECK(schedule_of(cfg, 50.0).inv_freq[1] == doctest::Approx(0.01).epsilon(1e-14));
    CHECK(schedule_of(cfg).inv_freq[1] == doctest::Approx(0.01).epsilon(1e-14));
    // seq 300: base = 1e4 * (2*300/100 - 1)^(4/2) = 1e4 * 25 = 2.5e5; g_1 = 2.5e5^(-1/2) = 0.002.
    CHECK(schedule_of(cfg, 300.0).inv_freq[1] == doctest::Approx(0.002).epsilon(1e-14));
}

TEST_CASE("yarn: ramp between correction dims, attention factor 0.1 ln(s) + 1") {
    // d = 8, theta 1e4 (g = 1, 0.1, 0.01, 0.001), factor 4, original 2048.
    // low = floor(8 ln(2048/(64 pi)) / (2 ln 1e4)) = floor(1.008) = 1,
    // high = ceil(8 ln(2048/(2 pi)) / (2 ln 1e4)) = ceil(2.513) = 3.
    // ramp (k-1)/2 clamped: 0, 0, 0.5, 1 -> g'_2 = 0.5*0.01/4 + 0.5*0.01, g'_3 = 0.001/4.
    const std::string cfg = R"({"head_dim": 8, "max_position_embeddings": 8192,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                            "original_max_position_embeddings": 2048}})";
    const Schedule s = schedule_of(cfg);
    CHECK(s.inv_freq[0] == doctest::Approx(1.0));
    CHECK(s.inv_freq[1] == doctest::Approx(0.1));
    CHECK(s.inv_freq[2] == doctest::Approx(0.00625));
    CHECK(s.inv_freq[3] == doctest::Approx(0.00025));
    CHECK(s.attention_factor == doctest::Approx(1.1386294361));  // 0.1 ln 4 + 1
    // truncate false keeps low = 1.008, high = 2.513: g'_2 ramp = (2 - 1.008)/(1.505).
    Json j = Json::parse(cfg);
    j["rope_parameters"]["truncate"] = false;
    const double ramp = (2.0 - 1.0080001056257721) / (2.513150083945678 - 1.0080001056257721);
    const Schedule t = hf_schedule(parse_hf_rope_config(j, "config.json").global());
    CHECK(t.inv_freq[2] == doctest::Approx(0.01 * ramp / 4 + 0.01 * (1 - ramp)).epsilon(1e-12));
    // mscale / mscale_all_dim (DeepSeek): (0.1*1*ln4+1)/(0.1*2*ln4+1).
    j["rope_parameters"]["mscale"] = 1.0;
    j["rope_parameters"]["mscale_all_dim"] = 2.0;
    const double m = (0.1 * std::log(4.0) + 1) / (0.2 * std::log(4.0) + 1);
    CHECK(hf_schedule(parse_hf_rope_config(j, "c").global()).attention_factor ==
          doctest::Approx(m));
    j["rope_parameters"]["attention_factor"] = 0.5;
    CHECK(hf_schedule(parse_hf_rope_config(j, "c").global()).attention_factor == 0.5);
}

TEST_CASE("yarn factor: v4 takes max/original when the dict names original, v5 the explicit one") {
    const std::string v4 = R"({"head_dim": 8, "rope_theta": 1e4, "max_position_embeddings": 16384,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}})";
    CHECK(*parse_hf_rope_config(Json::parse(v4), "c").global().factor == 8.0);
    const std::string v5 = R"({"head_dim": 8, "max_position_embeddings": 16384,
        "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0,
                            "original_max_position_embeddings": 2048}})";
    CHECK(*parse_hf_rope_config(Json::parse(v5), "c").global().factor == 4.0);
}

TEST_CASE("longrope: short factors up to original length, long beyond; sqrt attention factor") {
    // d = 4, theta 1e4: g = 1, 0.01. No factor: factor = 400/100 = 4,
    // attention = sqrt(1 + ln 4 / ln 100) = sqrt(1.30103).
    const std::string cfg = R"({"head_dim": 4, "max_position_embeddings": 400,
        "rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4,
            "original_max_position_embeddings": 100, "short_factor": [1, 2], "long_factor": [3, 4]}})";
    const Schedule shrt = schedule_of(cfg, 100.0);
    CHECK(shrt.inv_freq[0] == doctest::Approx(1.0));
    CHECK(shrt.inv_freq[1] == doctest::Approx(0.005));
    CHECK(shrt.attention_factor ==
          doctest::Approx(std::sqrt(1.0 + std::log(4.0) / std::log(100.0))));
    const Schedule lng = schedule_of(cfg, 101.0);
    CHECK(lng.inv_freq[0] == doctest::Approx(1.0 / 3));
    CHECK(lng.inv_freq[1] == doctest::Approx(0.0025));
    // factor 1 and explicit attention_factor 1: plain division by the factors.
    const Schedule one = schedule_of(R"({"head_dim": 4, "max_position_embeddings": 400,
        "rope_parameters": {"rope_type": "longrope", "rope_theta": 1e4, "factor": 1.0,
            "attention_factor": 1.0, "short_factor": [1, 1e30], "long_factor": [1, 1e30]}})");
    CHECK(one.attention_factor == 1.0);
    CHECK(one.inv_freq[0] == 1.0);
    CHECK(one.inv_freq[1] == doctest::Approx(1e-32));
}

TEST_CASE("longrope v4: a top-level original_max_position_embeddings overrides factor") {
    const std::string cfg = R"({"head_dim": 4, "rope_theta": 1e4, "max_position_embeddings": 400,
        "original_max_position_embeddings": 100,
        "rope_scaling": {"type": "longrope", "factor": 1.0, "short_factor": [1, 1], "long_factor": [1, 1]}})";
    const HfRopeParameters p = parse_hf_rope_config(Json::parse(cfg), "c").global();
    CHECK(*p.factor == 4.0);
    CHECK(*p.original_max_position_embeddings == 100);
}

TEST_CASE("llama3 (Llama 3.1 8B parameters): unchanged, smoothed and divided frequencies") {
    // theta 5e5, d 128, factor 8, low 1, high 4, original 8192: wavelengths below 2048 are
    // unchanged, above 8192 divided by 8. k = 32: g = 5e5^(-1/2) = 1/sqrt(5e5), wavelength
    // 2 pi sqrt(5e5) = 4442.88 lies in the band; smooth = (8192/4442.88 - 1)/3 = 0.281283,
    // g' = g ((1 - smooth)/8 + smooth) = 5.248462e-4.
    const Schedule s = schedule_of(R"({"hidden_size": 4096, "num_attention_heads": 32,
        "rope_theta": 500000.0, "max_position_embeddings": 131072,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
    REQUIRE(s.inv_freq.size() == 64);
    CHECK(s.inv_freq[0] == 1.0);
    // k = 26: wavelength 1298 < 2048, unchanged: 5e5^(-26/64).
    CHECK(s.inv_freq[26] == doctest::Approx(std::pow(5e5, -26.0 / 64)).epsilon(1e-15));
    CHECK(s.inv_freq[32] == doctest::Approx(5.248461609929546e-4).epsilon(1e-12));
    // k = 63: wavelength > 8192, divided by 8: 5e5^(-63/64)/8 = 3.068926e-7.
    CHECK(s.inv_freq[63] == doctest::Approx(3.068925988914511e-7).epsilon(1e-12));
}

TEST_CASE("proportional (Gemma 4 p-RoPE): first int(p d // 2) frequencies over d, rest zero") {
    const Schedule s = schedule_of(R"({"head_dim": 8, "rope_parameters": {
        "rope_type": "proportional", "rope_theta": 1e4, "partial_rotary_factor": 0.5}})");
    CHECK(s.rotary_dim == 8);
    REQUIRE(s.inv_freq.size() == 4);
    CHECK(s.inv_freq[0] == 1.0);
    CHECK(s.inv_freq[1] == doctest::Approx(0.1));
    CHECK(s.inv_freq[2] == 0.0);
    CHECK(s.inv_freq[3] == 0.0);
    // p = 0 is NoPE.
    const Schedule nope = schedule_of(R"({"head_dim": 8, "rope_parameters": {
        "rope_type": "proportional", "rope_theta": 1e4, "partial_rotary_factor": 0.0}})");
    for (double g : nope.inv_freq) CHECK(g == 0.0);
}

TEST_CASE("v5 per-layer rope_parameters (Gemma 4): global_head_dim for proportional full layers") {
    const HfRopeConfig c = parse_hf_rope_config(Json::parse(R"({
        "head_dim": 256, "global_head_dim": 512,
        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "proportional", "rope_theta": 1000000.0,
                               "partial_rotary_factor": 0.25}}})"),
                                                "config.json");
    CHECK(c.style == HfStyle::rope_parameters);
    CHECK(c.per_layer());
    REQUIRE(c.by_layer_type.size() == 2);
    CHECK(c.layer_types.size() == 3);
    const Schedule sliding = hf_schedule(c.by_layer_type[0].second);
    CHECK(sliding.inv_freq.size() == 128);
    const Schedule full = hf_schedule(c.by_layer_type[1].second);
    REQUIRE(full.inv_freq.size() == 256);
    // int(0.25 * 512 // 2) = 64 kept; g_63 = 1e6^(-126/512).
    CHECK(full.inv_freq[63] == doctest::Approx(std::pow(1e6, -126.0 / 512)));
    CHECK(full.inv_freq[64] == 0.0);
}

TEST_CASE("malformed configs are one-line data errors naming config.json and the key") {
    CHECK(error_of(R"({"rope_theta": 1e4})") ==
          "config.json: head_dim: missing, and hidden_size / num_attention_heads cannot stand in "
          "for it");
    CHECK(error_of(R"({"head_dim": 7})") ==
          "config.json: head_dim: expected an even head dimension, got 7");
    CHECK(error_of(R"({"head_dim": 8, "rope_scaling": {"rope_type": "ntk-by-parts"}})")
              .rfind("config.json: rope_scaling.rope_type: unknown rope type 'ntk-by-parts'", 0) ==
          0);
    CHECK(
        error_of(
            R"({"head_dim": 8, "max_position_embeddings": 10, "rope_scaling": {"rope_type": "longrope", "short_factor": [1, 1, 1], "long_factor": [1, 1, 1, 1]}})") ==
        "config.json: rope_scaling.short_factor: expected 4 entries (rotary_dim / 2), got 3");
    CHECK(error_of(R"({"head_dim": 8, "rope_scaling": {"rope_type": "linear"}})") ==
          "config.json: rope_scaling.factor: missing (required by rope_type linear)");
    CHECK(error_of(R"({"head_dim": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8,
        "low_freq_factor": 1, "high_freq_factor": 4}})") ==
          "config.json: rope_scaling.original_max_position_embeddings: missing (required by "
          "rope_type llama3)");
    CHECK(error_of(R"({"head_dim": 8, "rope_theta": "big"})") ==
          "config.json: rope_theta: expected a number, got \"big\"");
    CHECK(error_of(R"({"head_dim": 8, "rope_scaling": {"rope_type": "dynamic", "factor": 2}})") ==
          "config.json: max_position_embeddings: missing (needed by rope_type dynamic)");
    CHECK(error_of("[1, 2]") == "config.json: expected a JSON object");
}

TEST_CASE("absurd counts are refused, not converted with undefined behaviour (fuzz_hf_rope)") {
    // 2^64 - 2 as a JSON number: a double past SIZE_MAX, once cast straight to size_t.
    CHECK(error_of(R"({"head_dim": 18446744073709551614, "num_attention_heads": 1})") ==
          "config.json: head_dim: expected a non-negative integer below 2^53, got "
          "1.8446744073709552e+19");
    CHECK(error_of(R"({"head_dim": 1048576, "num_attention_heads": 1})") ==
          "config.json: head_dim: head dimension 1048576 is implausibly large (limit 65536)");
    CHECK(error_of(R"({"hidden_size": 4194304, "num_attention_heads": 2})") ==
          "config.json: head_dim: head dimension 2097152 is implausibly large (limit 65536)");
}
