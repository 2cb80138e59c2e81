#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "ropekit/convert/hf_rope_validation.hpp"
#include "ropekit/convert/prope_encoding.hpp"
#include "ropekit/core/error.hpp"

using namespace ropekit;
using Json = nlohmann::ordered_json;

namespace {

Json llama_config(std::size_t head_dim, double theta, bool v5) {
    Json c = {{"architectures", {"LlamaForCausalLM"}},
              {"hidden_size", head_dim * 4},
              {"num_attention_heads", 4},
              {"max_position_embeddings", 4096}};
    if (v5) {
        c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", theta}};
    } else {
        c["rope_theta"] = theta;
        c["rope_scaling"] = nullptr;
    }
    return c;
}

int exit_code_of(const Json& config, const PropeRequest& request) {
    try {
        plan_hf_prope(config, "config.json", request);
    } catch (const Error& e) {
        return static_cast<int>(e.code());
    }
    return 0;
}

}  // namespace

TEST_CASE("every encoding round-trips over several (p, theta, d), in v4 and v5 style") {
    for (PropeEncoding e :
         {PropeEncoding::proportional, PropeEncoding::llama3, PropeEncoding::longrope}) {
        for (bool v5 : {false, true}) {
            for (std::size_t d : {8, 64, 128, 256}) {
                for (double theta : {1e4, 5e5, 1e6}) {
                    for (double p : {0.0, 0.25, 0.3, 0.5, 0.75, 1.0}) {
                        CAPTURE(encoding_name(e));
                        CAPTURE(v5);
                        CAPTURE(d);
                        CAPTURE(theta);
                        CAPTURE(p);
                        const HfPropePlan plan = plan_hf_prope(llama_config(d, theta, v5),
                                                               "config.json", {p, false, {}, e});
                        // The emitted table, read with transformers' formulas, is the intended one
                        // (plan_hf_prope ran the check); here: the intended one is p-RoPE.
                        const std::vector<double>& t = plan.layers[0].target.inv_freq;
                        const std::size_t m = static_cast<std::size_t>(
                            std::floor(p * static_cast<double>(d / 2) + 1e-9));
                        for (std::size_t k = 0; k < d / 2; ++k) {
                            CHECK((t[k] == 0.0) == (k >= m));
                            if (k < m)
                                CHECK(t[k] == doctest::Approx(
                                                  std::pow(theta, -2.0 * static_cast<double>(k) /
                                                                      static_cast<double>(d)))
                                                  .epsilon(1e-14));
                        }
                        const std::string key = v5 ? "rope_parameters" : "rope_scaling";
                        CHECK(plan.config[key]["rope_type"] == encoding_name(e));
                        CHECK(plan.config.contains("rope_theta") == !v5);
                    }
                }
            }
        }
    }
}

TEST_CASE("llama3 hard cut puts both cut-off wavelengths strictly between kept and dropped") {
    const HfPropePlan plan = plan_hf_prope(llama_config(128, 5e5, false), "config.json",
                                           {0.25, false, {}, PropeEncoding::llama3});
    const Json& d = plan.config["rope_scaling"];
    const double context = d["original_max_position_embeddings"].get<double>();
    const double low_wavelen = context / d["low_freq_factor"].get<double>();
    const double high_wavelen = context / d["high_freq_factor"].get<double>();
    const double last_kept = 2 * M_PI * std::pow(5e5, 2.0 * 15 / 128);
    const double first_dropped = 2 * M_PI * std::pow(5e5, 2.0 * 16 / 128);
    CHECK(last_kept < high_wavelen);
    CHECK(high_wavelen < low_wavelen);
    CHECK(low_wavelen < first_dropped);
    CHECK(d["factor"].get<double>() == 1e30);
}

TEST_CASE("llama3 output passes transformers' load validation: original context below max") {
    for (bool v5 : {false, true}) {
        CAPTURE(v5);
        const HfPropePlan plan = plan_hf_prope(llama_config(128, 5e5, v5), "config.json",
                                               {0.25, false, {}, PropeEncoding::llama3});
        const Json& d = plan.config[v5 ? "rope_parameters" : "rope_scaling"];
        CHECK(d["original_max_position_embeddings"] == 4095);  // max_position_embeddings 4096
        CHECK(llama3_load_warnings(plan.config).empty());
        // The same table as a context of 4096 with the same cut-off wavelengths, which warns.
        Json old = plan.config;
        Json& od = old[v5 ? "rope_parameters" : "rope_scaling"];
        od["original_max_position_embeddings"] = 4096;
        od["low_freq_factor"] = d["low_freq_factor"].get<double>() * 4096.0 / 4095.0;
        od["high_freq_factor"] = d["high_freq_factor"].get<double>() * 4096.0 / 4095.0;
        REQUIRE(llama3_load_warnings(old).size() == 1);
        CHECK(llama3_load_warnings(old)[0].find("must be less than max_position_embeddings 4096") !=
              std::string::npos);
        const Schedule now = hf_schedule(parse_hf_rope_config(plan.config, "c").global());
        const Schedule before = hf_schedule(parse_hf_rope_config(old, "c").global());
        for (std::size_t k = 0; k < now.inv_freq.size(); ++k) {
            CHECK(now.inv_freq[k] == doctest::Approx(before.inv_freq[k]).epsilon(1e-15));
        }
    }
    // A Llama 3.1 input keeps its own original context (8192 < 131072).
    Json c = llama_config(128, 5e5, false);
    c["max_position_embeddings"] = 131072;
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
    const HfPropePlan plan =
        plan_hf_prope(c, "config.json", {0.25, false, {}, PropeEncoding::llama3});
    CHECK(plan.config["rope_scaling"]["original_max_position_embeddings"] == 8192);
    // Without max_position_embeddings, below LlamaConfig's default of 2048.
    c = llama_config(128, 5e5, false);
    c.erase("max_position_embeddings");
    const HfPropePlan bare =
        plan_hf_prope(c, "config.json", {0.25, false, {}, PropeEncoding::llama3});
    CHECK(bare.config["rope_scaling"]["original_max_position_embeddings"] == 2047);
    CHECK(llama3_load_warnings(bare.config).empty());
}

TEST_CASE("llama3 load validation flags what transformers warns about") {
    Json c = {{"max_position_embeddings", 100},
              {"rope_scaling",
               {{"rope_type", "llama3"},
                {"factor", 8},
                {"low_freq_factor", 4.0},
                {"high_freq_factor", 1.0},
                {"original_max_position_embeddings", 64},
                {"rope_theta", 1e4}}}};
    const std::vector<std::string> w = llama3_load_warnings(c);
    REQUIRE(w.size() == 3);  // rope_theta inside a v4 dict, an integer factor, high <= low
    CHECK(w[0].find("unrecognized key rope_theta") != std::string::npos);
    CHECK(w[1].find("factor must be a float") != std::string::npos);
    CHECK(w[2].find("greater than low_freq_factor") != std::string::npos);
    c["rope_parameters"] = c["rope_scaling"];  // v5 reads rope_theta inside
    c.erase("rope_scaling");
    CHECK(llama3_load_warnings(c).size() == 2);
    c["rope_parameters"]["partial_rotary_factor"] = 0.25;  // optional for every v5 rope type
    CHECK(llama3_load_warnings(c).size() == 2);
    c["rope_scaling"] = c["rope_parameters"];  // but unknown to v4's rope_scaling
    c.erase("rope_parameters");
    CHECK(llama3_load_warnings(c).size() == 4);
}

TEST_CASE("longrope: identical lists, 1 kept and 1e30 dropped, factor and attention_factor 1") {
    const HfPropePlan plan = plan_hf_prope(llama_config(16, 1e4, true), "config.json",
                                           {0.5, true, {}, PropeEncoding::longrope});
    const Json& d = plan.config["rope_parameters"];
    CHECK(d["short_factor"] == d["long_factor"]);
    // --reverse keeps the lowest 4 of 8: the first 4 are dropped.
    CHECK(d["short_factor"] == Json::array({1e30, 1e30, 1e30, 1e30, 1.0, 1.0, 1.0, 1.0}));
    CHECK(d["factor"] == 1.0);
    CHECK(d["attention_factor"] == 1.0);
    CHECK(!plan.config.contains("original_max_position_embeddings"));
}

TEST_CASE("--theta rebases the original schedule before truncation") {
    const HfPropePlan plan = plan_hf_prope(llama_config(8, 1e4, false), "config.json",
                                           {0.5, false, 5e5, PropeEncoding::proportional});
    CHECK(plan.config["rope_theta"] == 5e5);
    CHECK(plan.layers[0].target.inv_freq[1] == doctest::Approx(std::pow(5e5, -0.25)));
}

TEST_CASE(
    "refusals: yarn/dynamic inputs, partial rotary under proportional, reverse, scaled llama3") {
    Json yarn = llama_config(8, 1e4, false);
    yarn["rope_scaling"] = {
        {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 1024}};
    CHECK(exit_code_of(yarn, {0.5, false, {}, PropeEncoding::longrope}) == 1);
    Json dynamic = llama_config(8, 1e4, false);
    dynamic["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
    CHECK(exit_code_of(dynamic, {0.5, false, {}, PropeEncoding::longrope}) == 1);
    Json partial = llama_config(8, 1e4, false);
    partial["partial_rotary_factor"] = 0.5;
    CHECK(exit_code_of(partial, {0.5, false, {}, PropeEncoding::proportional}) == 1);
    CHECK(exit_code_of(partial, {0.5, false, {}, PropeEncoding::longrope}) == 0);
    CHECK(exit_code_of(llama_config(8, 1e4, false), {0.5, true, {}, PropeEncoding::proportional}) ==
          2);
    CHECK(exit_code_of(llama_config(8, 1e4, false), {0.5, true, {}, PropeEncoding::llama3}) == 2);
    Json linear = llama_config(8, 1e4, false);
    linear["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    CHECK(exit_code_of(linear, {0.5, false, {}, PropeEncoding::llama3}) == 1);
    CHECK(exit_code_of(linear, {0.5, false, {}, PropeEncoding::proportional}) ==
          0);  // factor carried
    CHECK(exit_code_of(linear, {0.5, false, {}, PropeEncoding::longrope}) == 0);
}

TEST_CASE("the round-trip check catches a config that does not say what was intended") {
    HfPropePlan plan = plan_hf_prope(llama_config(8, 1e4, false), "config.json",
                                     {0.5, false, {}, PropeEncoding::longrope});
    check_round_trip(plan.config, "config.json", plan.layers);  // passes as emitted
    plan.config["rope_scaling"]["short_factor"][3] = 1e10;      // 1e-3 / 1e10 = 1e-13 > 1e-20
    plan.config["rope_scaling"]["long_factor"][3] = 1e10;
    CHECK_THROWS_WITH_AS(check_round_trip(plan.config, "config.json", plan.layers),
                         doctest::Contains("round-trip check failed: frequency 3"), Error);
    plan.config["rope_theta"] = 10001.0;  // kept frequency 1 off by 1e-5 relative
    CHECK_THROWS_AS(check_round_trip(plan.config, "config.json", plan.layers), Error);
}

TEST_CASE("describe_kept names m of d/2 and the lowest kept frequency's wavelength") {
    CHECK(describe_kept({1.0, 0.1, 0.0, 0.0}) ==
          "kept 2 of 4 frequencies; lowest kept 0.1 rad/token (wavelength 62.8319 tokens)");
    CHECK(describe_kept({0.0, 0.0}) == "kept 0 of 2 frequencies (NoPE)");
}

TEST_CASE("Llama 3.1 input: llama3/proportional only while every kept frequency is unscaled") {
    Json c = llama_config(128, 5e5, false);
    c["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
    // p = 0.25 keeps k < 16: wavelengths up to 2 pi 5e5^(30/128) = 136 < 2048, all unscaled.
    CHECK(exit_code_of(c, {0.25, false, {}, PropeEncoding::llama3}) == 0);
    CHECK(exit_code_of(c, {0.25, false, {}, PropeEncoding::proportional}) == 0);
    // p = 0.75 keeps k = 29 (wavelength 2402, smoothed): only longrope can carry it.
    CHECK(exit_code_of(c, {0.75, false, {}, PropeEncoding::llama3}) == 1);
    CHECK(exit_code_of(c, {0.75, false, {}, PropeEncoding::proportional}) == 1);
    const HfPropePlan plan =
        plan_hf_prope(c, "config.json", {0.75, false, {}, PropeEncoding::longrope});
    const Json& factors = plan.config["rope_scaling"]["short_factor"];
    CHECK(factors[0] == 1.0);
    CHECK(factors[47].get<double>() == doctest::Approx(8.0));  // wavelength > 8192: divided by 8
    CHECK(factors[48].get<double>() == 1e30);
}
