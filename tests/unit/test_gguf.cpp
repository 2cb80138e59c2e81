#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ropekit/core/error.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/formats/gguf.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;
namespace fs = std::filesystem;

namespace {

// Assembles GGUF bytes field by field, independently of write_gguf.
struct Bytes {
    std::string b;
    template <class T>
    Bytes& num(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof v);
        return *this;
    }
    Bytes& str(const std::string& s) {
        num<std::uint64_t>(s.size());
        b += s;
        return *this;
    }
    Bytes& pad(std::size_t a) {
        b.append((a - b.size() % a) % a, '\0');
        return *this;
    }
};

// v3, alignment 32: keys general.architecture = "llama", llama.rope.dimension_count = 8 (u32),
// tokenizer.ggml.tokens = ["a", "bc"]; tensors a: F32 [4] = 1..4 at 0, b: F16 [2, 1] at 32.
Bytes sample(std::uint64_t b_offset = 32, std::uint32_t version = 3) {
    Bytes g;
    g.b = "GGUF";
    g.num<std::uint32_t>(version).num<std::uint64_t>(2).num<std::uint64_t>(3);
    g.str("general.architecture").num<std::uint32_t>(8).str("llama");
    g.str("llama.rope.dimension_count").num<std::uint32_t>(4).num<std::uint32_t>(8);
    g.str("tokenizer.ggml.tokens")
        .num<std::uint32_t>(9)
        .num<std::uint32_t>(8)
        .num<std::uint64_t>(2);
    g.str("a").str("bc");
    g.str("a").num<std::uint32_t>(1).num<std::uint64_t>(4).num<std::uint32_t>(0).num<std::uint64_t>(
        0);
    g.str("b").num<std::uint32_t>(2).num<std::uint64_t>(2).num<std::uint64_t>(1);
    g.num<std::uint32_t>(1).num<std::uint64_t>(b_offset);
    g.pad(32);
    for (float x : {1.0f, 2.0f, 3.0f, 4.0f}) g.num(x);
    g.pad(32);
    g.num<std::uint16_t>(0x3c00).num<std::uint16_t>(0xc000);  // 1.0, -2.0
    return g;
}

std::string save(const TempDir& dir, const std::string& bytes) {
    const std::string path = dir.file("m.gguf");
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

std::string open_error(const std::string& path) {
    return error_of([&] { GgufFile::open(path); });
}

}  // namespace

TEST_CASE("GGUF reader: keys, arrays, tensor infos and data of a hand-assembled v3 file") {
    TempDir dir;
    const GgufFile f = GgufFile::open(save(dir, sample().b));
    CHECK(f.version() == 3);
    CHECK(f.alignment() == 32);
    REQUIRE(f.metadata().size() == 3);
    CHECK(f.find("general.architecture")->as_string() == "llama");
    CHECK(f.find("llama.rope.dimension_count")->as_double() == 8.0);
    const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
    CHECK(tokens->type == GgufType::array);
    CHECK(tokens->element_type == GgufType::string);
    CHECK(tokens->count == 2);
    REQUIRE(f.tensors().size() == 2);
    CHECK(f.find_tensor("b")->dims == std::vector<std::uint64_t>{2, 1});
    CHECK(f.find_tensor("b")->byte_size == 4);
    CHECK(f.read_float("a") == std::vector<float>{1, 2, 3, 4});
    CHECK(f.read_float("b") == std::vector<float>{1, -2});
}

TEST_CASE("a moved GGUF file keeps its path, and pointers into it stay valid") {
    TempDir dir;
    const std::string path = save(dir, sample().b);
    std::vector<GgufFile> files;
    files.push_back(GgufFile::open(path));
    const GgufTensorInfo* a = files[0].find_tensor("a");
    const GgufValue* architecture = files[0].find("general.architecture");
    const std::uint8_t* bytes = files[0].bytes(*a);
    for (int i = 0; i < 8; ++i) files.push_back(GgufFile::open(path));  // reallocates: moves [0]
    GgufFile moved = std::move(files[0]);
    CHECK(moved.path() == path);
    CHECK(moved.find_tensor("a") == a);
    CHECK(moved.find("general.architecture") == architecture);
    CHECK(architecture->as_string() == "llama");
    CHECK(moved.bytes(*a) == bytes);
    float first = 0;
    std::memcpy(&first, bytes, 4);
    CHECK(first == 1.0f);
}

TEST_CASE("GGUF writer: a copy re-reads with identical keys and tensor bytes") {
    TempDir dir;
    const GgufFile src = GgufFile::open(save(dir, sample().b));
    std::vector<GgufOutputTensor> tensors;
    for (const auto& t : src.tensors())
        tensors.push_back({t.name, t.dims, t.type, src.bytes(t), t.byte_size});
    std::vector<GgufKV> kvs = src.metadata();
    kvs.push_back({"general.alignment", GgufValue::u32(64)});
    const float extra[3] = {1.0f, 1e30f, 1e30f};
    tensors.push_back(
        {"rope_freqs.weight", {3}, 0, reinterpret_cast<const std::uint8_t*>(extra), 12});
    write_gguf(dir.file("out.gguf"), 3, kvs, tensors, 64);
    const GgufFile out = GgufFile::open(dir.file("out.gguf"));
    CHECK(out.alignment() == 64);
    REQUIRE(out.metadata().size() == 4);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(out.metadata()[i].key == src.metadata()[i].key);
        CHECK(out.metadata()[i].value.raw == src.metadata()[i].value.raw);
    }
    for (const auto& t : src.tensors()) {
        const GgufTensorInfo* o = out.find_tensor(t.name);
        REQUIRE(o != nullptr);
        CHECK(o->offset % 64 == 0);
        CHECK(std::memcmp(out.bytes(*o), src.bytes(t), t.byte_size) == 0);
    }
    CHECK(out.read_float("rope_freqs.weight")[2] == 1e30f);
    // Alignment key and writer alignment must agree.
    CHECK_THROWS_AS(write_gguf(dir.file("bad.gguf"), 3, kvs, tensors, 32), Error);
}

TEST_CASE("GGUF writer: tensor bytes come from the source file in the kernel, else from memory") {
    TempDir dir;
    const GgufFile src = GgufFile::open(save(dir, sample().b));
    const GgufTensorInfo& a = *src.find_tensor("a");
    // `data` deliberately maps other bytes than the source file holds, to see which path wrote.
    { std::ofstream(dir.file("other.bin"), std::ios::binary) << std::string(a.byte_size, '\xAB'); }
    const MappedFile mapped = MappedFile::open(dir.file("other.bin"));
    const std::vector<std::uint8_t> other(mapped.data(), mapped.data() + a.byte_size);
    auto written = [&](const std::string& source_file, std::uint64_t source_offset) {
        GgufOutputTensor t{a.name, a.dims, a.type, mapped.data(), a.byte_size, true};
        t.source_file = source_file;
        t.source_offset = source_offset;
        write_gguf(dir.file("out.gguf"), 3, {}, {t}, 32);
        const GgufFile out = GgufFile::open(dir.file("out.gguf"));
        const std::uint8_t* p = out.bytes(*out.find_tensor("a"));
        return std::vector<std::uint8_t>(p, p + a.byte_size);
    };
    const std::uint8_t* file_bytes = src.bytes(a);
    CHECK(written(src.path(), src.file_offset(a)) ==
          std::vector<std::uint8_t>(file_bytes, file_bytes + a.byte_size));
    // A source the kernel cannot copy from (a character device): the bytes in memory are used.
    CHECK(written("/dev/zero", 0) == other);
    CHECK(written("", 0) == other);
}

TEST_CASE("GGUF reader refuses malformed files with one-line errors") {
    TempDir dir;
    const std::string p = dir.file("m.gguf") + ": ";
    CHECK(open_error(save(dir, "GGUX" + sample().b.substr(4))) ==
          p + "not a GGUF file (no GGUF magic)");
    CHECK(open_error(save(dir, sample(32, 1).b)) ==
          p + "version: GGUF version 1 is not supported (expected 2 or 3, little-endian)");
    CHECK(open_error(save(dir, sample(32, 2).b)) == "no error");
    CHECK(open_error(save(dir, sample(16).b)) ==
          p + "b: offset 16 is not a multiple of the alignment 32");
    CHECK(open_error(save(dir, sample(0).b)) == p + "b: data overlaps the previous tensor");
    CHECK(open_error(save(dir, sample(64).b)) ==
          p + "b: data [64, 68) runs past the end of the file (data section 36 bytes)");
    const std::string whole = sample().b;
    CHECK(open_error(save(dir, whole.substr(0, 100))).find("truncated") != std::string::npos);
    Bytes huge;
    huge.b = "GGUF";
    huge.num<std::uint32_t>(3).num<std::uint64_t>(0).num<std::uint64_t>(1);
    huge.str("k").num<std::uint32_t>(8).num<std::uint64_t>(std::uint64_t{1} << 62);
    CHECK(open_error(save(dir, huge.b)).rfind(p + "k: truncated", 0) == 0);
    Bytes dup;
    dup.b = "GGUF";
    dup.num<std::uint32_t>(3).num<std::uint64_t>(0).num<std::uint64_t>(2);
    dup.str("k").num<std::uint32_t>(4).num<std::uint32_t>(1);
    dup.str("k").num<std::uint32_t>(4).num<std::uint32_t>(2);
    CHECK(open_error(save(dir, dup.b)) == p + "k: key appears twice");
    Bytes badtype;
    badtype.b = "GGUF";
    badtype.num<std::uint32_t>(3).num<std::uint64_t>(0).num<std::uint64_t>(1);
    badtype.str("k").num<std::uint32_t>(13);
    CHECK(open_error(save(dir, badtype.b)) == p + "k: unknown value type 13");
    // Found by fuzz_gguf: 2^62 + 4 F32 elements are 2^64 + 16 bytes, which wrapped to 16, passed
    // the range check, and made read_float allocate 2^62 floats (std::length_error escaped).
    Bytes wrap;
    wrap.b = "GGUF";
    wrap.num<std::uint32_t>(3).num<std::uint64_t>(1).num<std::uint64_t>(0);
    wrap.str("w").num<std::uint32_t>(1).num<std::uint64_t>((std::uint64_t{1} << 62) + 4);
    wrap.num<std::uint32_t>(0).num<std::uint64_t>(0);
    wrap.b.resize(64, '\0');
    CHECK(open_error(save(dir, wrap.b)) ==
          p + "w: 4611686018427387908 elements of F32 need more than 2^64 bytes");
    CHECK(ggml_type_bytes(0, (std::uint64_t{1} << 62) + 4) == std::nullopt);
    CHECK(ggml_type_bytes(0, std::uint64_t{1} << 61) == std::uint64_t{1} << 63);
}
