#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ropekit/core/error.hpp"
#include "ropekit/formats/safetensors.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;
namespace fs = std::filesystem;

namespace {

// A safetensors file assembled by hand: 8-byte LE length, header text as given, data bytes.
std::string write_raw(const TempDir& dir, const std::string& header, const std::string& data,
                      std::uint64_t length_field = UINT64_MAX) {
    const std::string path = dir.file("t.safetensors");
    std::ofstream out(path, std::ios::binary);
    const std::uint64_t n = length_field == UINT64_MAX ? header.size() : length_field;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return path;
}

std::string bytes_of(const void* p, std::size_t n) {
    return std::string(static_cast<const char*>(p), n);
}

std::string open_error(const std::string& path) {
    return error_of([&] { SafetensorsFile::open(path); });
}

}  // namespace

TEST_CASE("safetensors reader: a hand-assembled file gives the right tensors and values") {
    TempDir dir;
    // a: F32 [2] = {1, -2.5}; b: F16 [1] = 0x3c00 (1.0); c: BF16 [1] = 0xc040 (-3.0);
    // d: I64 [1] = 7. Offsets listed out of order on purpose.
    const float a[2] = {1.0f, -2.5f};
    const std::uint16_t b = 0x3c00, c = 0xc040;
    const std::int64_t d = 7;
    const std::string data = bytes_of(a, 8) + bytes_of(&b, 2) + bytes_of(&c, 2) + bytes_of(&d, 8);
    const std::string header = R"({"c":{"dtype":"BF16","shape":[1],"data_offsets":[10,12]},)"
                               R"("__metadata__":{"format":"pt","note":"x"},)"
                               R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]},)"
                               R"("d":{"dtype":"I64","shape":[1],"data_offsets":[12,20]}})";
    const SafetensorsFile f = SafetensorsFile::open(write_raw(dir, header, data));
    REQUIRE(f.tensors().size() == 4);
    CHECK(f.tensors()[0].name == "a");  // data order
    CHECK(f.tensors()[3].name == "d");
    CHECK(f.metadata().at("format") == "pt");
    CHECK(f.metadata().at("note") == "x");
    const Tensor<float> ta = f.read_float("a");
    CHECK(ta.shape == Shape{2});
    CHECK(ta.data[1] == -2.5f);
    CHECK(f.read_float("b").data[0] == 1.0f);
    CHECK(f.read_double("c").data[0] == -3.0);
    CHECK(f.read_double("d").data[0] == 7.0);
    CHECK(std::memcmp(f.bytes(f.at("a")), a, 8) == 0);  // zero-copy view of the mapped bytes
    CHECK(f.find("zz") == nullptr);
}

TEST_CASE("a moved safetensors file keeps its path, and pointers into it stay valid") {
    TempDir dir;
    const float a[2] = {1.0f, -2.5f};
    const std::string path =
        write_raw(dir, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", bytes_of(a, 8));
    std::vector<SafetensorsFile> files;
    files.push_back(SafetensorsFile::open(path));
    const SafetensorsTensor* t = files[0].find("a");
    const std::uint8_t* bytes = files[0].bytes(*t);
    for (int i = 0; i < 8; ++i) files.push_back(SafetensorsFile::open(path));  // moves [0]
    SafetensorsFile moved = std::move(files[0]);
    CHECK(moved.path() == path);
    CHECK(moved.find("a") == t);
    CHECK(moved.bytes(*t) == bytes);
    CHECK(std::memcmp(bytes, a, 8) == 0);
    CHECK(moved.read_float("a").data[1] == -2.5f);
}

TEST_CASE("safetensors writer: header padded with spaces to 8, format pt, contiguous offsets") {
    const std::vector<SafetensorsSpec> specs = {{"w", "F16", {2, 3}}, {"inv_freq", "F32", {2}}};
    const std::string header = safetensors_header(specs);
    const std::string compact =
        R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
        R"("inv_freq":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
    CHECK(header.size() % 8 == 0);
    CHECK(header.substr(0, compact.size()) == compact);
    CHECK(header.substr(compact.size()) == std::string(header.size() - compact.size(), ' '));

    TempDir dir;
    const std::uint16_t w[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
    const float g[2] = {1.0f, 0.01f};
    write_safetensors(dir.file("out.safetensors"), specs, {w, g}, false, {});
    const SafetensorsFile f = SafetensorsFile::open(dir.file("out.safetensors"));
    CHECK(f.header_size() == header.size());
    CHECK(f.file_size() == 8 + header.size() + 20);
    CHECK(f.read_float("w").data[5] == 6.0f);
    CHECK(f.read_float("inv_freq").data[1] == 0.01f);
    // An existing output is refused without --force (usage error), and nothing is left behind.
    try {
        write_safetensors(dir.file("out.safetensors"), specs, {w, g}, false, {});
        FAIL("expected a refusal");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
    }
    CHECK(dir.entries() == 1);
}

TEST_CASE("safetensors writer streams: pieces of any size, and the byte count is checked") {
    TempDir dir;
    const std::string path = dir.file("s.safetensors");
    {
        SafetensorsWriter writer(path, {{"x", "U8", {5}}});
        writer.append("ab", 2);
        writer.append("cde", 3);
        writer.finish();
    }
    const SafetensorsFile f = SafetensorsFile::open(path);
    CHECK(std::string(reinterpret_cast<const char*>(f.bytes(f.at("x"))), 5) == "abcde");
    SafetensorsWriter short_writer(dir.file("t.safetensors"), {{"x", "U8", {5}}});
    short_writer.append("ab", 2);
    CHECK_THROWS_AS(short_writer.finish(), Error);
    CHECK_THROWS_AS(short_writer.append("abcdef", 6), Error);
}

TEST_CASE("safetensors reader refuses malformed files with one-line errors") {
    TempDir dir;
    const std::string ok = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    const std::string four(4, '\0');
    const auto err = [&](const std::string& header, const std::string& data,
                         std::uint64_t length = UINT64_MAX) {
        return open_error(write_raw(dir, header, data, length));
    };
    const std::string p = dir.file("t.safetensors") + ": ";
    CHECK(err(ok, four) == "no error");
    CHECK(err(ok, four, 1000) == p + "header length 1000 runs past the end of the file (" +
                                     std::to_string(8 + ok.size() + 4) + " bytes)");
    CHECK(err(ok, four, std::uint64_t{1} << 63).find("runs past the end of the file") !=
          std::string::npos);
    CHECK(err("{\"a\": nonsense}", "").rfind(p + "header is not valid JSON", 0) == 0);
    CHECK(err("[1,2]", "") == p + "header is not a JSON object");
    CHECK(
        err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
            std::string(6, '\0')) ==
        p + "b: data_offsets [2, 6] overlap the previous tensor (which ends at 4)");
    CHECK(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')) ==
          p + "a: data_offsets [4, 8] leave a gap after 0");
    CHECK(err(ok, "") == p + "a: data_offsets [0, 4] run past the data section (0 bytes)");
    CHECK(err(ok, std::string(6, '\0')) == p + "tensors cover 4 of the 6 data bytes");
    CHECK(err(R"({"a":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", four) ==
          p + "a: unknown dtype 'F12'");
    CHECK(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four) ==
          p + "a: F32 [2] needs 8 bytes but data_offsets [0, 4] hold 4");
    CHECK(
        err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
            four) == p + "a: tensor name appears twice in the header");
    CHECK(err(R"({"__metadata__":{"format":1}})", "") ==
          p + "__metadata__: value of 'format' is not a string");
    CHECK(err(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four) ==
          p + "a: shape entries must be non-negative integers, got -1");
    CHECK(open_error(dir.file("missing.safetensors")).find("cannot open") != std::string::npos);
}

TEST_CASE("sharded index: weight_map read, shard names confined to the directory") {
    TempDir dir;
    const std::string path = dir.file("model.safetensors.index.json");
    std::ofstream(path) << R"({"metadata":{"total_size":40},"weight_map":{
        "a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors",
        "c":"model-00001-of-00002.safetensors"}})";
    const SafetensorsIndex index = read_safetensors_index(path);
    CHECK(index.weight_map.at("b") == "model-00002-of-00002.safetensors");
    REQUIRE(index.shards.size() == 2);
    CHECK(index.shards[0] == "model-00001-of-00002.safetensors");
    std::ofstream(path) << R"({"weight_map":{"a":"../../etc/passwd"}})";
    try {
        read_safetensors_index(path);
        FAIL("expected a refusal");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == path +
                                           ": weight_map: shard '../../etc/passwd' is not a plain "
                                           "file name in the index's directory");
    }
}
