#pragma once
// Element types found in dumps and checkpoints, and exact conversions for the 16-bit ones.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ropekit/core/enum_names.hpp"

namespace ropekit {

enum class DType { f16, bf16, f32, f64 };
inline constexpr EnumNames<DType, 4> kDTypeNames{
    {{DType::f16, "f16"}, {DType::bf16, "bf16"}, {DType::f32, "f32"}, {DType::f64, "f64"}}};

std::string dtype_name(DType t);  // "f16", "bf16", "f32", "f64"
DType parse_dtype(const std::string& name, const std::string& option);  // usage_error

// IEEE binary16 <-> float. Exact widening; narrowing rounds to nearest, ties to even
// (HDF5's own f32 -> f16 conversion does not, see docs/formats.md).
float half_to_float(std::uint16_t h);
std::uint16_t float_to_half(float f);

// bfloat16 is the top half of a float32. Narrowing rounds to nearest even; NaN stays NaN.
inline float bf16_to_float(std::uint16_t b) {
    std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    __builtin_memcpy(&f, &bits, sizeof f);
    return f;
}
std::uint16_t float_to_bf16(float f);

// Batch conversions on the I/O hot path: F16C when the CPU has it, otherwise the exact scalar
// code above; both give identical results for every input (NaN payloads aside).
void halves_to_floats(const std::uint16_t* in, float* out, std::size_t n);
void floats_to_halves(const float* in, std::uint16_t* out, std::size_t n);
void bf16s_to_floats(const std::uint16_t* in, float* out, std::size_t n);

}  // namespace ropekit
