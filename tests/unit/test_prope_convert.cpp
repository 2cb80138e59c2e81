#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/formats/safetensors.hpp"
#include "ropekit/rope/hf_rope.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;
namespace fs = std::filesystem;

namespace {

ino_t inode(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_ino;
}

// head_dim 8 (4 frequencies), theta 1e4: g = 1, 0.1, 0.01, 0.001.
void make_checkpoint(const std::string& dir, bool inv_freq) {
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json") << R"({"hidden_size": 16, "num_attention_heads": 2,
        "max_position_embeddings": 1024, "rope_theta": 10000.0, "rope_scaling": null})";
    std::ofstream(dir + "/tokenizer.json") << "{}";
    const float w[4] = {1, 2, 3, 4};
    const float g[4] = {1.0f, 0.1f, 0.01f, 0.001f};
    std::vector<SafetensorsSpec> specs = {
        {"model.layers.0.self_attn.q_proj.weight", "F32", {2, 2}}};
    std::vector<const void*> data = {w};
    if (inv_freq) {
        specs.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {4}});
        data.push_back(g);
    }
    write_safetensors(dir + "/model.safetensors", specs, data, false, {});
}

ConvertOptions options(double p, PropeEncoding encoding = PropeEncoding::llama3) {
    ConvertOptions o;
    o.request.p = p;
    o.request.encoding = encoding;
    return o;
}

}  // namespace

TEST_CASE("convert_hf_directory: new config, hard-linked weights, rewritten inv_freq") {
    TempDir dir;
    make_checkpoint(dir.file("in"), false);
    const ConvertReport r = convert_hf_directory(dir.file("in"), dir.file("out"), options(0.5));
    CHECK(r.kept.at(0) ==
          "kept 2 of 4 frequencies; lowest kept 0.1 rad/token (wavelength 62.8319 tokens)");
    CHECK(r.linked == 2);  // model.safetensors and tokenizer.json
    CHECK(inode(dir.file("in/model.safetensors")) == inode(dir.file("out/model.safetensors")));
    const HfRopeConfig c = read_hf_rope_config(dir.file("out/config.json"));
    CHECK(c.global().rope_type == "llama3");
    const Schedule s = hf_schedule(c.global());
    CHECK(s.inv_freq[1] == doctest::Approx(0.1));
    CHECK(s.inv_freq[2] <= 1e-20);

    make_checkpoint(dir.file("in2"), true);
    const ConvertReport r2 = convert_hf_directory(dir.file("in2"), dir.file("out2"), options(0.25));
    CHECK(r2.rewritten == 1);
    const SafetensorsFile in = SafetensorsFile::open(dir.file("in2/model.safetensors"));
    const SafetensorsFile out = SafetensorsFile::open(dir.file("out2/model.safetensors"));
    const auto& wi = in.at("model.layers.0.self_attn.q_proj.weight");
    const auto& wo = out.at("model.layers.0.self_attn.q_proj.weight");
    CHECK(std::memcmp(in.bytes(wi), out.bytes(wo), 16) == 0);
    CHECK(out.read_float("model.layers.0.self_attn.rotary_emb.inv_freq").data ==
          std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f});
    CHECK(out.metadata().at("format") == "pt");
}

TEST_CASE("convert_hf_directory refuses an output inside the input and leaves nothing behind") {
    TempDir dir;
    make_checkpoint(dir.file("in"), false);
    CHECK_THROWS_AS(convert_hf_directory(dir.file("in"), dir.file("in/sub"), options(0.5)), Error);
    CHECK_THROWS_AS(convert_hf_directory(dir.file("in"), dir.path().string(), options(0.5)), Error);
    ConvertOptions reverse = options(0.5);
    reverse.request.reverse = true;
    CHECK_THROWS_AS(convert_hf_directory(dir.file("in"), dir.file("out"), reverse), Error);
    CHECK(!fs::exists(dir.file("out")));
    CHECK(!fs::exists(dir.file("in/sub")));
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++entries;
    CHECK(entries == 1);
}

TEST_CASE("convert_gguf: rope_freqs 1 kept / 1e30 dropped, combined with existing factors") {
    TempDir dir;
    const float w[2] = {1, 2};
    const float existing[4] = {1, 1, 2, 8};
    std::vector<GgufKV> kvs = {{"general.architecture", GgufValue::text("llama")},
                               {"llama.rope.dimension_count", GgufValue::u32(8)}};
    write_gguf(dir.file("m.gguf"), 3, kvs,
               {{"w", {2}, 0, reinterpret_cast<const std::uint8_t*>(w), 8},
                {"rope_freqs.weight", {4}, 0, reinterpret_cast<const std::uint8_t*>(existing), 16}},
               32);
    const ConvertReport r = convert_gguf(dir.file("m.gguf"), dir.file("p.gguf"), options(0.5));
    CHECK(r.kept.at(0).rfind("kept 2 of 4", 0) == 0);
    const GgufFile out = GgufFile::open(dir.file("p.gguf"));
    CHECK(out.read_float("rope_freqs.weight") == std::vector<float>{1, 1, 2e30f, 8e30f});
    CHECK(out.read_float("w") == std::vector<float>{1, 2});
    CHECK(out.tensors()[1].name == "rope_freqs.weight");  // replaced in place, order kept
    // Converting again with p = 1 keeps the dropped ones dropped (no 1e60 overflow).
    convert_gguf(dir.file("p.gguf"), dir.file("q.gguf"), options(1.0));
    CHECK(GgufFile::open(dir.file("q.gguf")).read_float("rope_freqs.weight") ==
          std::vector<float>{1, 1, 2e30f, 8e30f});
}

TEST_CASE("detect_input_kind by contents") {
    TempDir dir;
    make_checkpoint(dir.file("hf"), false);
    CHECK(detect_input_kind(dir.file("hf")) == InputKind::hf_directory);
    std::ofstream(dir.file("x.bin")) << "GGUF....";
    CHECK(detect_input_kind(dir.file("x.bin")) == InputKind::gguf);
    std::ofstream(dir.file("y.bin")) << std::string("\x89HDF\r\n\x1a\n", 8);
    CHECK(detect_input_kind(dir.file("y.bin")) == InputKind::hdf5);
    std::ofstream(dir.file("z.txt")) << "hello";
    CHECK_THROWS_AS(detect_input_kind(dir.file("z.txt")), Error);
    CHECK_THROWS_AS(detect_input_kind(dir.path().string()), Error);  // a directory without config
}
