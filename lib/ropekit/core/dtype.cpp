#include "ropekit/core/dtype.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>

namespace ropekit {

std::string dtype_name(DType t) {
    return enum_name(kDTypeNames, t);
}

DType parse_dtype(const std::string& name, const std::string& option) {
    return parse_enum(kDTypeNames, name, option);
}

float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu;
    const std::uint32_t mantissa = h & 0x3ffu;
    float magnitude;
    if (exponent == 0) {
        magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    } else if (exponent == 31) {
        magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN()
                             : std::numeric_limits<float>::infinity();
    } else {
        magnitude =
            std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
    }
    std::uint32_t bits;
    std::memcpy(&bits, &magnitude, sizeof bits);
    bits |= sign;
    float out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

std::uint16_t float_to_half(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
    const std::uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits >= 0x7f800000u) {  // inf or NaN
        return static_cast<std::uint16_t>(sign | 0x7c00u | (abs_bits > 0x7f800000u ? 0x200u : 0u));
    }
    if (abs_bits >= 0x477ff000u)
        return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to inf
    float magnitude;
    std::memcpy(&magnitude, &abs_bits, sizeof magnitude);
    if (abs_bits < 0x38800000u) {
        // Subnormal half: value / 2^-24, rounded to nearest even by the FPU's default mode.
        const float scaled = std::nearbyint(magnitude * 16777216.0f);
        return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(scaled));
    }
    // Normal: keep 10 mantissa bits, round to nearest even on the 13 dropped bits.
    const std::uint32_t rounding = 0xfffu + ((abs_bits >> 13) & 1u);
    const std::uint32_t rounded = abs_bits + rounding;
    return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

std::uint16_t float_to_bf16(float f) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<std::uint16_t>(bits >> 16);
}

namespace {

__attribute__((target("f16c,avx"))) void halves_to_floats_f16c(const std::uint16_t* in, float* out,
                                                               std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) out[i] = half_to_float(in[i]);
}

__attribute__((target("f16c,avx"))) void floats_to_halves_f16c(const float* in, std::uint16_t* out,
                                                               std::size_t n) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    }
    for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

// clang 14's __builtin_cpu_supports does not know "f16c" (a compile error), so ask CPUID.
bool cpu_has_f16c() {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
}

bool has_f16c() {
    static const bool yes = __builtin_cpu_supports("avx") && cpu_has_f16c();
    return yes;
}

}  // namespace

void halves_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
    if (has_f16c()) return halves_to_floats_f16c(in, out, n);
    for (std::size_t i = 0; i < n; ++i) out[i] = half_to_float(in[i]);
}

void floats_to_halves(const float* in, std::uint16_t* out, std::size_t n) {
    if (has_f16c()) return floats_to_halves_f16c(in, out, n);
    for (std::size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

void bf16s_to_floats(const std::uint16_t* in, float* out, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

}  // namespace ropekit
