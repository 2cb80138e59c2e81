// GGUF tensor types to float, on blocks built by hand: a few values of each worked out on paper
// from the block layout (ggml-common.h), and every value of a patterned block from the layout
// rules stated per value (which sub-block, which nibble, which high bits).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/gguf.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;

namespace {

using Block = std::vector<std::uint8_t>;

constexpr std::uint16_t kHalfOne = 0x3C00, kHalfHalf = 0x3800, kHalfQuarter = 0x3400;

void put16(Block& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v & 0xFF);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

std::vector<float> convert(GgmlType type, const Block& bytes, std::size_t count) {
    std::vector<float> out(count);
    dequantize(static_cast<std::uint32_t>(type), bytes.data(), count, out.data());
    return out;
}

// Q4_K/Q5_K header: d = 1, dmin = 0.5, and 6-bit scales {1, 2, 3, 4, 17, 33, 50, 63} and mins
// {0, 5, 10, 63, 16, 31, 47, 62} packed by hand: bytes 0-3 scale bits 0-5 of sub-blocks 0-3
// and bits 4-5 of 4-7 on top, bytes 4-7 the same for mins, bytes 8-11 low nibbles of 4-7's
// scale (low) and min (high).
const int kScale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
const float kMin[8] = {0, 5, 10, 63, 16, 31, 47, 62};
Block k_header(std::size_t size) {
    Block b(size, 0);
    put16(b, 0, kHalfOne);
    put16(b, 2, kHalfHalf);
    const std::uint8_t packed[12] = {65, 130, 195, 196, 64, 69, 138, 255, 1, 241, 242, 239};
    std::memcpy(b.data() + 4, packed, 12);
    return b;
}

// Nibbles of the hand-checked K-quant blocks: byte 32c + l holds l mod 16 (low), 15 − l mod 16.
void fill_k_nibbles(Block& b, std::size_t at) {
    for (int i = 0; i < 128; ++i) {
        const int l = i % 32;
        b[at + i] = static_cast<std::uint8_t>((l % 16) | ((15 - l % 16) << 4));
    }
}

// The 4-bit code of value v in those nibbles: sub-block v / 32 even = low nibbles.
int k_nibble(int v) {
    const int l = v % 32;
    return (v / 32) % 2 == 0 ? l % 16 : 15 - l % 16;
}

// Codes without a period (Knuth's multiplicative hash), so that a wrong byte or bit index
// cannot land on an equal code by luck.
int scrambled(int i, int bits) {
    return static_cast<int>((static_cast<std::uint32_t>(i) * 2654435761u) >> 20) &
           ((1 << bits) - 1);
}

// Places the 4-bit code of value v (0 … 255) of a Q4_K/Q5_K block whose nibbles start at
// `at`: sub-block s = v / 32, byte 32·(s / 2) + v mod 32, low nibble when s is even.
void place_k_nibble(Block& b, std::size_t at, int v, int code) {
    const int s = v / 32;
    b[at + 32 * (s / 2) + v % 32] |= static_cast<std::uint8_t>(code << (s % 2 == 0 ? 0 : 4));
}

}  // namespace

TEST_CASE("F32, F16, BF16 and F64 convert exactly, from any byte offset") {
    Block b(1 + 16, 0);
    const float f[4] = {1.5f, -0.0f, 3.0e-39f, 65504.0f};
    std::memcpy(b.data() + 1, f, 16);
    CHECK(std::memcmp(convert(GgmlType::f32, Block(b.begin() + 1, b.end()), 4).data(), f, 16) == 0);
    std::vector<float> out(4);
    dequantize(0, b.data() + 1, 4, out.data());  // unaligned source
    CHECK(out == std::vector<float>{1.5f, -0.0f, 3.0e-39f, 65504.0f});

    Block h(1 + 8, 0);  // 1, -2, 65504 (largest half), 2^-24 (smallest subnormal)
    put16(h, 1, 0x3C00), put16(h, 3, 0xC000), put16(h, 5, 0x7BFF), put16(h, 7, 0x0001);
    dequantize(static_cast<std::uint32_t>(GgmlType::f16), h.data() + 1, 4, out.data());
    CHECK(out == std::vector<float>{1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f});

    Block bf(8, 0);  // 1, -5, 2^-126 (0x0080), 3.3895314e38 (0x7F7F)
    put16(bf, 0, 0x3F80), put16(bf, 2, 0xC0A0), put16(bf, 4, 0x0080), put16(bf, 6, 0x7F7F);
    CHECK(convert(GgmlType::bf16, bf, 4) ==
          std::vector<float>{1.0f, -5.0f, 1.17549435e-38f, 3.38953139e38f});

    Block d(16, 0);
    const double v[2] = {0.1, -2.5};
    std::memcpy(d.data(), v, 16);
    CHECK(convert(GgmlType::f64, d, 2) == std::vector<float>{0.1f, -2.5f});
}

TEST_CASE("Q8_0: d times the signed byte") {
    Block b(2 * 34, 0);  // two blocks: d = 0.5 with q = j − 16, then d = 0.25 with q = −128, 127
    put16(b, 0, kHalfHalf);
    for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<std::uint8_t>(j - 16);
    put16(b, 34, kHalfQuarter);
    b[36] = 0x80, b[37] = 0x7F;
    const auto y = convert(GgmlType::q8_0, b, 64);
    CHECK(y[0] == -8.0f);
    CHECK(y[16] == 0.0f);
    CHECK(y[31] == 7.5f);
    for (int j = 0; j < 32; ++j) CHECK(y[j] == 0.5f * static_cast<float>(j - 16));
    CHECK(y[32] == -32.0f);
    CHECK(y[33] == 31.75f);
    CHECK(y[34] == 0.0f);
}

TEST_CASE("Q4_0: byte j holds values j (low nibble) and j + 16 (high), offset by 8") {
    Block b(18, 0);
    put16(b, 0, kHalfQuarter);
    for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
    const auto y = convert(GgmlType::q4_0, b, 32);
    CHECK(y[0] == -2.0f);   // (0 − 8) / 4
    CHECK(y[15] == 1.75f);  // (15 − 8) / 4
    CHECK(y[16] == 1.75f);  // high nibble of byte 0: 15
    CHECK(y[31] == -2.0f);  // high nibble of byte 15: 0
    for (int j = 0; j < 16; ++j) {
        CHECK(y[j] == 0.25f * static_cast<float>(j - 8));
        CHECK(y[j + 16] == 0.25f * static_cast<float>(7 - j));
    }
}

TEST_CASE("Q4_K: 6-bit scales and mins per sub-block of 32, nibbles by chunks of 64") {
    Block b = k_header(144);
    fill_k_nibbles(b, 16);
    const auto y = convert(GgmlType::q4_k, b, 256);
    CHECK(y[0] == 0.0f);      // sub-block 0: 1·0 − 0.5·0
    CHECK(y[33] == 25.5f);    // sub-block 1, high nibble of byte 1 = 14: 2·14 − 0.5·5
    CHECK(y[150] == 94.0f);   // sub-block 4, low nibble of byte 86 = 6: 17·6 − 0.5·16
    CHECK(y[200] == 376.5f);  // sub-block 6, low nibble of byte 104 = 8: 50·8 − 0.5·47
    CHECK(y[255] == -31.0f);  // sub-block 7, high nibble of byte 127 = 0: 63·0 − 0.5·62
    for (int v = 0; v < 256; ++v) {
        const int s = v / 32;
        CHECK(y[v] == static_cast<float>(kScale[s] * k_nibble(v)) - 0.5f * kMin[s]);
    }
}

TEST_CASE("Q4_K: every value of a scrambled block from the layout rule") {
    Block b = k_header(144);
    for (int v = 0; v < 256; ++v) place_k_nibble(b, 16, v, scrambled(v, 4));
    const auto y = convert(GgmlType::q4_k, b, 256);
    for (int v = 0; v < 256; ++v) {
        const int s = v / 32;
        CHECK(y[v] == static_cast<float>(kScale[s] * scrambled(v, 4)) - 0.5f * kMin[s]);
    }
}

TEST_CASE("Q5_K: Q4_K plus a fifth bit, bit s of byte l for value 32s + l") {
    Block b = k_header(176);
    for (int l = 0; l < 32; ++l) b[16 + l] = l % 2 == 0 ? 0xAA : 0x55;  // odd / even sub-blocks
    fill_k_nibbles(b, 48);
    const auto y = convert(GgmlType::q5_k, b, 256);
    CHECK(y[32] == 59.5f);  // sub-block 1, l = 0: bit 1 of 0xAA set, q = 15 + 16: 2·31 − 2.5
    CHECK(y[33] == 25.5f);  // sub-block 1, l = 1: bit 1 of 0x55 clear, q = 14
    CHECK(y[1] == 17.0f);   // sub-block 0, l = 1: bit 0 of 0x55 set, q = 1 + 16: 1·17 − 0
    for (int v = 0; v < 256; ++v) {
        const int s = v / 32, l = v % 32;
        const int fifth = ((l % 2 == 0 ? 0xAA : 0x55) >> s) & 1;
        CHECK(y[v] == static_cast<float>(kScale[s] * (k_nibble(v) + 16 * fifth)) - 0.5f * kMin[s]);
    }
}

TEST_CASE("Q5_K: every value of a scrambled block from the layout rule") {
    Block b = k_header(176);
    for (int v = 0; v < 256; ++v) {
        const int code = scrambled(v, 5);
        place_k_nibble(b, 48, v, code & 0xF);
        b[16 + v % 32] |= static_cast<std::uint8_t>((code >> 4) << (v / 32));
    }
    const auto y = convert(GgmlType::q5_k, b, 256);
    for (int v = 0; v < 256; ++v) {
        const int s = v / 32;
        CHECK(y[v] == static_cast<float>(kScale[s] * scrambled(v, 5)) - 0.5f * kMin[s]);
    }
}

TEST_CASE("Q6_K: one value placed by hand") {
    // Value 100 = 128·0 + 32·3 + 4: low nibble in the high half of byte 32 + 4, high bits 6-7
    // of byte 128 + 4, scale 6 = 100 / 16. q = 4 | 2 << 4 = 36, so 0.5 · (−2) · (36 − 32) = −4;
    // every other value has q = 0: 0.5 · scale · (−32).
    Block b(210, 0);
    b[36] = 0x40;
    b[128 + 4] = 0x80;
    for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<std::uint8_t>(s - 8);
    put16(b, 208, kHalfHalf);
    const auto y = convert(GgmlType::q6_k, b, 256);
    CHECK(y[100] == -4.0f);
    CHECK(y[99] == 32.0f);     // scale 6 = −2
    CHECK(y[0] == 128.0f);     // scale 0 = −8
    CHECK(y[255] == -112.0f);  // scale 15 = 7
}

TEST_CASE("Q6_K: every value of a scrambled block from the layout rule, extreme scales") {
    // Value v = 128n + 32i + l: low 4 bits of its code in byte 64n + 32(i mod 2) + l (low
    // nibble for i < 2), high 2 bits at bit 2i of byte 128 + 32n + l.
    Block b(210, 0);
    auto code = [](int v) { return scrambled(v, 6); };
    for (int v = 0; v < 256; ++v) {
        const int n = v / 128, i = (v % 128) / 32, l = v % 32;
        b[64 * n + 32 * (i % 2) + l] |=
            static_cast<std::uint8_t>((code(v) & 0xF) << (i < 2 ? 0 : 4));
        b[128 + 32 * n + l] |= static_cast<std::uint8_t>((code(v) >> 4) << (2 * i));
    }
    const std::int8_t scales[16] = {-128, 127, 1, -1, 0, 5, -7, 64, 2, 3, 4, 5, 6, 7, 8, 9};
    std::memcpy(b.data() + 192, scales, 16);
    put16(b, 208, kHalfQuarter);
    const auto y = convert(GgmlType::q6_k, b, 256);
    for (int v = 0; v < 256; ++v) {
        CHECK(y[v] ==
              0.25f * static_cast<float>(scales[v / 16]) * static_cast<float>(code(v) - 32));
    }
    CHECK(y[0] == 1024.0f);  // code(0) = 0: 0.25 · (−128) · (0 − 32)
}

TEST_CASE("dequantize refuses other types and partial blocks") {
    std::vector<float> out(64);
    const Block b(64, 0);
    CHECK(can_dequantize(12));
    CHECK_FALSE(can_dequantize(6));  // Q5_0
    CHECK_FALSE(can_dequantize(99));
    CHECK_THROWS_AS(dequantize(6, b.data(), 32, out.data()), std::invalid_argument);
    CHECK_THROWS_AS(dequantize(8, b.data(), 16, out.data()), std::invalid_argument);
}

TEST_CASE("GGUF tensors: rows read a block at a time; other types refused naming tensor and type") {
    TempDir dir;
    Block q8(3 * 34, 0);  // three rows of one Q8_0 block: d = 1, 0.5, 0.25, q = row + 1
    for (int r = 0; r < 3; ++r) {
        put16(q8, 34 * r, r == 0 ? kHalfOne : r == 1 ? kHalfHalf : kHalfQuarter);
        for (int j = 0; j < 32; ++j) q8[34 * r + 2 + j] = static_cast<std::uint8_t>(r + 1);
    }
    const Block q5_0(22, 0), half_rows(34, 0);
    auto tensor = [](const char* name, std::vector<std::uint64_t> dims, std::uint32_t type,
                     const Block& data) {
        GgufOutputTensor t;
        t.name = name, t.dims = std::move(dims), t.type = type;
        t.data = data.data(), t.byte_size = data.size();
        return t;
    };
    write_gguf(dir.file("m.gguf"), 3, {},
               {tensor("w", {32, 3}, 8, q8), tensor("blk.0.attn_q.weight", {32, 1}, 6, q5_0),
                tensor("short_rows", {16, 2}, 8, half_rows)},
               32);
    const GgufFile f = GgufFile::open(dir.file("m.gguf"));

    const GgufTensorInfo& w = *f.find_tensor("w");
    CHECK(gguf_row_count(w) == 3);
    std::vector<float> rows(64);
    dequantize_rows(f, w, 1, 2, rows.data());
    CHECK(rows[0] == 1.0f);  // row 1: 0.5 · 2
    CHECK(rows[31] == 1.0f);
    CHECK(rows[32] == 0.75f);  // row 2: 0.25 · 3
    CHECK(f.read_float("w")[0] == 1.0f);
    CHECK_THROWS_AS(dequantize_rows(f, w, 2, 2, rows.data()), std::out_of_range);

    const GgufTensorInfo& q = *f.find_tensor("blk.0.attn_q.weight");
    expect_error([&] { require_dequantizable(f, q); }, ExitCode::data,
                 {"m.gguf: blk.0.attn_q.weight: ", "Q5_0 tensors cannot be converted", "Q6_K"});
    expect_error([&] { f.read_float("blk.0.attn_q.weight"); }, ExitCode::data,
                 {"blk.0.attn_q.weight", "Q5_0"});
    expect_error([&] { f.read_float("short_rows"); }, ExitCode::data,
                 {"short_rows: rows of 16 values are not whole Q8_0 blocks of 32"});
}
