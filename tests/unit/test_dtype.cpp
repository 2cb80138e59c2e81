#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ropekit/core/dtype.hpp"

using namespace ropekit;

TEST_CASE("half_to_float decodes hand-computed bit patterns") {
    CHECK(half_to_float(0x0000) == 0.0f);
    CHECK(std::signbit(half_to_float(0x8000)));
    CHECK(half_to_float(0x3c00) == 1.0f);
    CHECK(half_to_float(0xc000) == -2.0f);
    CHECK(half_to_float(0x7bff) == 65504.0f);
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
    CHECK(half_to_float(0x3555) == 0.333251953125f);
    CHECK(std::isinf(half_to_float(0x7c00)));
    CHECK(std::isnan(half_to_float(0x7e00)));
}

TEST_CASE("float_to_half inverts half_to_float for every finite half") {
    for (std::uint32_t h = 0; h < 0x10000; ++h) {
        const float f = half_to_float(static_cast<std::uint16_t>(h));
        if (std::isnan(f)) continue;
        REQUIRE(float_to_half(f) == h);
    }
}

TEST_CASE("float_to_half rounds to nearest even, including ties and subnormals") {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1.0).
    CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
    // 1 + 3*2^-11 lies halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
    CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
    CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
    // Half the smallest subnormal ties to 0; 1.5 of it ties to 2 (even).
    CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(float_to_half(1.5f * std::ldexp(1.0f, -24)) == 0x0002);
    CHECK(float_to_half(65519.0f) == 0x7bff);
    CHECK(float_to_half(65520.0f) == 0x7c00);
    CHECK(float_to_half(-1e10f) == 0xfc00);
    CHECK((float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7fff) > 0x7c00);
}

TEST_CASE("bfloat16 is the top half of a float, rounded to nearest even") {
    CHECK(bf16_to_float(0x3f80) == 1.0f);
    CHECK(bf16_to_float(0xc040) == -3.0f);
    CHECK(float_to_bf16(1.0f) == 0x3f80);
    // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: tie to even (1.0).
    CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
    CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);
    CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("batch conversions agree with the scalar reference for every half and many floats") {
    std::vector<std::uint16_t> all(0x10000);
    for (std::size_t h = 0; h < all.size(); ++h) all[h] = static_cast<std::uint16_t>(h);
    std::vector<float> wide(all.size());
    halves_to_floats(all.data(), wide.data(), all.size());
    for (std::size_t h = 0; h < all.size(); ++h) {
        const float want = half_to_float(all[h]);
        if (std::isnan(want)) {
            REQUIRE(std::isnan(wide[h]));
        } else {
            REQUIRE(std::memcmp(&want, &wide[h], sizeof want) == 0);
        }
    }
    // Floats around every half boundary: exact ties, just above and below, subnormals, overflow.
    std::vector<float> floats;
    for (std::uint32_t bits = 0; bits < 0x48000000u; bits += 0x1000u - 1) {
        float f;
        std::memcpy(&f, &bits, sizeof f);
        floats.push_back(f);
        floats.push_back(-f);
    }
    std::vector<std::uint16_t> narrow(floats.size());
    floats_to_halves(floats.data(), narrow.data(), floats.size());
    for (std::size_t i = 0; i < floats.size(); ++i) REQUIRE(narrow[i] == float_to_half(floats[i]));

    const std::uint16_t b[9] = {0x3f80, 0xc040, 0, 0x8000, 0x7f80, 0x0001, 0x4049, 0x3eaa, 0xff80};
    float out[9];
    bf16s_to_floats(b, out, 9);
    for (int i = 0; i < 9; ++i) CHECK(out[i] == bf16_to_float(b[i]));
}
