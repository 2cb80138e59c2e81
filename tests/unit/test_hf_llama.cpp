// The Hugging Face loader against the llama2.c loader: the same weights written both ways (with
// HF's q/k row permutation from Meta's interleaved pairs to its half split) give the same logits.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/formats/safetensors.hpp"
#include "ropekit/model/hf_llama.hpp"
#include "ropekit/model/llama2c.hpp"
#include "ropekit/model/load_model.hpp"
#include "tiny_llama.hpp"

using namespace ropekit;
using namespace tiny_llama;

namespace {

// transformers' convert_llama_weights_to_hf permute(): within each head, HF row j*hd/2 + i is
// Meta row 2i + j, so the interleaved pair (2i, 2i+1) becomes the half-split pair (i, i+hd/2).
std::vector<float> permute_rows(const std::vector<float>& w, std::size_t heads, std::size_t hd,
                                std::size_t cols) {
    std::vector<float> out(w.size());
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t i = 0; i < hd / 2; ++i) {
            for (std::size_t j = 0; j < 2; ++j) {
                const float* src = &w[(h * hd + 2 * i + j) * cols];
                std::copy(src, src + cols, &out[(h * hd + j * hd / 2 + i) * cols]);
            }
        }
    }
    return out;
}

// Rounds every weight to what `dtype` can hold, so both formats carry identical values.
void round_weights(TinyCheckpoint& c, const std::string& dtype) {
    for (auto* v : {&c.emb, &c.rms_att, &c.wq, &c.wk, &c.wv, &c.wo, &c.rms_ffn, &c.w1, &c.w2, &c.w3,
                    &c.rms_final, &c.wcls}) {
        for (float& x : *v) {
            if (dtype == "F16") x = half_to_float(float_to_half(x));
            if (dtype == "BF16") x = bf16_to_float(float_to_bf16(x));
        }
    }
}

struct Entry {
    std::string name;
    std::vector<float> values;
    Shape shape;
};

void write_hf(const TinyCheckpoint& c, const std::string& dir, const std::string& dtype,
              nlohmann::json config_overrides = nlohmann::json::object()) {
    fs::create_directories(dir);
    const auto& s = c.s;
    const std::size_t d = static_cast<std::size_t>(s.dim),
                      hd = d / static_cast<std::size_t>(s.heads),
                      kv = hd * static_cast<std::size_t>(s.kv_heads),
                      h = static_cast<std::size_t>(s.hidden), V = static_cast<std::size_t>(s.vocab);
    nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                             {"model_type", "llama"},
                             {"hidden_size", s.dim},
                             {"intermediate_size", s.hidden},
                             {"num_hidden_layers", s.layers},
                             {"num_attention_heads", s.heads},
                             {"num_key_value_heads", s.kv_heads},
                             {"vocab_size", s.vocab},
                             {"max_position_embeddings", s.seq_len},
                             {"rms_norm_eps", 1e-5},
                             {"rope_theta", 10000.0},
                             {"hidden_act", "silu"},
                             {"tie_word_embeddings", s.shared}};
    config.update(config_overrides);
    std::ofstream(dir + "/config.json") << config.dump(2);

    std::vector<Entry> entries;
    auto slice = [](const std::vector<float>& v, std::size_t l, std::size_t n) {
        return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(l * n),
                                  v.begin() + static_cast<std::ptrdiff_t>((l + 1) * n));
    };
    entries.push_back({"model.embed_tokens.weight", c.emb, {V, d}});
    for (std::size_t l = 0; l < static_cast<std::size_t>(s.layers); ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        entries.push_back({p + "input_layernorm.weight", slice(c.rms_att, l, d), {d}});
        entries.push_back(
            {p + "self_attn.q_proj.weight",
             permute_rows(slice(c.wq, l, d * d), static_cast<std::size_t>(s.heads), hd, d),
             {d, d}});
        entries.push_back(
            {p + "self_attn.k_proj.weight",
             permute_rows(slice(c.wk, l, kv * d), static_cast<std::size_t>(s.kv_heads), hd, d),
             {kv, d}});
        entries.push_back({p + "self_attn.v_proj.weight", slice(c.wv, l, kv * d), {kv, d}});
        entries.push_back({p + "self_attn.o_proj.weight", slice(c.wo, l, d * d), {d, d}});
        entries.push_back({p + "post_attention_layernorm.weight", slice(c.rms_ffn, l, d), {d}});
        entries.push_back({p + "mlp.gate_proj.weight", slice(c.w1, l, h * d), {h, d}});
        entries.push_back({p + "mlp.down_proj.weight", slice(c.w2, l, d * h), {d, h}});
        entries.push_back({p + "mlp.up_proj.weight", slice(c.w3, l, h * d), {h, d}});
    }
    entries.push_back({"model.norm.weight", c.rms_final, {d}});
    if (!s.shared) entries.push_back({"lm_head.weight", c.wcls, {V, d}});

    std::vector<SafetensorsSpec> specs;
    for (const auto& e : entries) specs.push_back({e.name, dtype, e.shape});
    SafetensorsWriter writer(dir + "/model.safetensors", specs);
    for (const auto& e : entries) {
        if (dtype == "F32") {
            writer.append(e.values.data(), e.values.size() * sizeof(float));
            continue;
        }
        std::vector<std::uint16_t> bits;
        for (float x : e.values)
            bits.push_back(dtype == "F16" ? float_to_half(x) : float_to_bf16(x));
        writer.append(bits.data(), bits.size() * 2);
    }
    writer.finish();
}

std::vector<float> logits_of(const LlamaModel& m, const std::vector<std::int64_t>& ids,
                             std::size_t batch) {
    const std::size_t T = ids.size() / batch;
    const auto hidden = m.forward(ids.data(), batch, T);
    std::vector<float> out(batch * T * m.config().vocab_size);
    m.logits(hidden.data(), batch * T, out.data());
    return out;
}

std::string hf_error(const std::string& dir) {
    try {
        load_hf_llama(dir);
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::data);
        return e.what();
    }
    FAIL("loaded a bad directory");
    return "";
}

}  // namespace

TEST_CASE("a Hugging Face directory and a llama2.c file of the same weights give the same logits") {
    TempDir tmp;
    for (const char* dtype : {"F32", "F16", "BF16"}) {
        for (bool shared : {true, false}) {
            CAPTURE(dtype);
            CAPTURE(shared);
            TinyShape shape;
            shape.dim = 32;  // head_dim 8: four frequencies, so the layouts really differ
            shape.shared = shared;
            TinyCheckpoint c = make_tiny(shape, shared ? 11u : 12u);
            round_weights(c, dtype);
            write_tiny(c, tmp.file("meta.bin"));
            write_hf(c, tmp.file(std::string("hf-") + dtype), dtype);
            const LlamaModel meta = load_llama2c(tmp.file("meta.bin"));
            const LlamaModel hf = load_model(tmp.file(std::string("hf-") + dtype));
            CHECK(hf.schedule().layout == Layout::half);
            CHECK(hf.schedule().inv_freq == meta.schedule().inv_freq);
            CHECK(hf.config().shared_classifier == shared);
            const std::vector<std::int64_t> ids = {1, 7, 3, 3, 10, 2, 9, 0, 4, 5, 1, 6};
            const auto a = logits_of(meta, ids, 2), b = logits_of(hf, ids, 2);
            double worst = 0;
            for (std::size_t i = 0; i < a.size(); ++i) {
                worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
            }
            // Only the summation order inside the q.k dot products differs.
            CHECK(worst < 1e-5);
        }
    }
}

TEST_CASE("Hugging Face directories that are not runnable Llamas are data errors") {
    TempDir tmp;
    TinyShape shape;
    const TinyCheckpoint c = make_tiny(shape, 13);
    write_hf(c, tmp.file("gemma3"), "F32", {{"model_type", "gemma3"}});
    CHECK(hf_error(tmp.file("gemma3"))
              .find("model_type: expected one of the families rope-dump runs (\"llama\", "
                    "\"mistral\", \"qwen2\", \"qwen3\", \"phi3\", \"gemma\", \"gemma2\", "
                    "\"gpt_neox\"), found "
                    "\"gemma3\"") != std::string::npos);
    // attention_bias: true promises biases on q, k, v and o; a checkpoint without them is broken.
    write_hf(c, tmp.file("bias"), "F32", {{"attention_bias", true}});
    CHECK(hf_error(tmp.file("bias")).find("self_attn.q_proj.bias: expected this tensor") !=
          std::string::npos);
    write_hf(c, tmp.file("qwen_windows"), "F32",
             {{"model_type", "qwen2"}, {"use_sliding_window", true}});
    CHECK(hf_error(tmp.file("qwen_windows"))
              .find("use_sliding_window: qwen2's per-layer sliding window is not supported") !=
          std::string::npos);
    write_hf(c, tmp.file("shape"), "F32", {{"intermediate_size", 25}});
    CHECK(hf_error(tmp.file("shape")).find("mlp.gate_proj.weight: expected shape [25, 16]") !=
          std::string::npos);
    write_hf(c, tmp.file("untied"), "F32", {{"tie_word_embeddings", false}});
    CHECK(hf_error(tmp.file("untied")).find("lm_head.weight") != std::string::npos);
    fs::create_directories(tmp.file("empty"));
    CHECK(hf_error(tmp.file("empty")).find("config.json") != std::string::npos);
    write_hf(c, tmp.file("noweights"), "F32");
    fs::remove(tmp.file("noweights") + "/model.safetensors");
    CHECK(hf_error(tmp.file("noweights")).find("model.safetensors") != std::string::npos);
}

TEST_CASE("the config's RoPE schedule is used: a proportional (p-RoPE) config zeroes frequencies") {
    TempDir tmp;
    TinyShape shape;
    shape.dim = 32;
    const TinyCheckpoint c = make_tiny(shape, 14);
    write_hf(c, tmp.file("prope"), "F32",
             {{"rope_parameters",
               {{"rope_type", "proportional"},
                {"rope_theta", 10000.0},
                {"partial_rotary_factor", 0.5}}}});
    const LlamaModel m = load_hf_llama(tmp.file("prope"));
    REQUIRE(m.schedule().inv_freq.size() == 4);
    CHECK(m.schedule().inv_freq[1] == doctest::Approx(std::pow(10000.0, -0.25)));
    CHECK(m.schedule().inv_freq[2] == 0.0);
    CHECK(m.schedule().inv_freq[3] == 0.0);
}
