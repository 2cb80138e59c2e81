#pragma once
// GGUF tensor data converted to float, value for value as ggml's reference dequantize_row_*
// functions (ggml-quants.c) compute it, for the types of the F32/F16/BF16, Q8_0, Q4_K_M, Q5_K_M
// and Q6_K files people download (docs/formats.md, "GGUF tensor types converted to float"). Block
// layouts (ggml-common.h; f16 = IEEE half, little-endian):
//   Q8_0  32 values in 34 bytes: f16 d, int8 q[32]                         x = d·q
//   Q4_0  32 values in 18 bytes: f16 d, 16 bytes; byte j holds value j in its low nibble and
//         value j + 16 in its high one                                    x = d·(q − 8)
//   Q4_K  256 values in 144 bytes: f16 d, f16 dmin, 12 bytes packing a 6-bit scale and min for
//         each of 8 sub-blocks of 32, 128 bytes of nibbles (byte 32c + l: value 64c + l low,
//         64c + 32 + l high)                                              x = d·scale·q − dmin·min
//   Q5_K  176 bytes: Q4_K's header, 32 bytes of fifth bits (bit 2c of byte l for value 64c + l,
//         bit 2c + 1 for value 64c + 32 + l), then Q4_K's nibbles         as Q4_K, q in 0 … 31
//   Q6_K  256 values in 210 bytes: 128 bytes of low nibbles, 64 bytes of 2-bit high parts,
//         int8 scales for 16 sub-blocks of 16, f16 d                      x = d·scale·(q − 32)
// F64 is converted too (our own files may hold it; ggml has no dequantizer for it).
#include <cstdint>

#include "ropekit/formats/gguf.hpp"

namespace ropekit {

enum class GgmlType : std::uint32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q8_0 = 8,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    f64 = 28,
    bf16 = 30
};

// Whether dequantize() converts the ggml type with this id.
bool can_dequantize(std::uint32_t type);

// Converts `count` values of `type`, a whole number of its blocks, stored at `src`
// (ggml_type_bytes(type, count) bytes, any alignment) into floats at `out`.
// std::invalid_argument for a type can_dequantize() refuses or a partial block.
void dequantize(std::uint32_t type, const std::uint8_t* src, std::uint64_t count, float* out);

// The tensor as rows of dims[0] values (the other dims flattened, ggml's row order).
std::uint64_t gguf_row_count(const GgufTensorInfo& tensor);

// data_error(file, tensor, ...) unless dequantize_rows() can read the tensor: a type it
// converts, rows of whole blocks.
void require_dequantizable(const GgufFile& file, const GgufTensorInfo& tensor);

// Rows [first, first + count) of the tensor as count · dims[0] floats at `out`, converted from
// the file's mapping: a block of rows at a time is all a caller needs in memory.
// require_dequantizable() first; std::out_of_range past the last row.
void dequantize_rows(const GgufFile& file, const GgufTensorInfo& tensor, std::uint64_t first,
                     std::uint64_t count, float* out);

}  // namespace ropekit
