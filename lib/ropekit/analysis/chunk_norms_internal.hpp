#pragma once
// freq-norms' inner kernel, shared by its HDF5 and in-place readers.
#include <cstddef>
#include <cstdint>

#include "ropekit/rope/rope.hpp"

namespace ropekit {

// out[k] += |chunk k of v| for k < F. Each norm is computed in float (relative error below 1e-7,
// far inside the documented 1e-5) so that four chunks take one SSE instruction (8 with AVX, 16
// with AVX-512F, half layout): a scalar sqrt
// does not vectorise under -fmath-errno; chunks whose float squares would overflow or underflow
// are computed in double. The sums over positions stay in double.
void add_chunk_norms(const float* v, const Schedule& s, std::size_t F, double* out);
// The same with at most `lanes` chunks per instruction (16: AVX-512F, 8: AVX, 4: SSE; each only
// where the CPU has it), so that tests can hold every path against the others: same bits.
void add_chunk_norms_lanes(const float* v, const Schedule& s, std::size_t F, double* out,
                           int lanes);

// Whether add_chunk_norms_f16 runs here: AVX-512F, half layout, a multiple of 16 chunks.
bool f16_norms_in_registers(const Schedule& s);
// add_chunk_norms of f16 halves, widened in registers: the same bits as widening them first
// (halves_to_floats) and calling add_chunk_norms. Only where f16_norms_in_registers(s).
void add_chunk_norms_f16(const std::uint16_t* v, const Schedule& s, std::size_t F, double* out);

// *out += the 2-norm of the dims that do not rotate (rotary_dim .. head_dim - 1: partial rotary),
// in double; nothing when every dim rotates.
void add_unrotated_norm(const float* v, const Schedule& s, double* out);

}  // namespace ropekit
