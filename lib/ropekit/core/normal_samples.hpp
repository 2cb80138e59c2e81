#pragma once
// Seeded standard normal samples, reproducible whatever the thread count: every stream (say, one
// per (q, k) pair) has its own generator derived from (seed, stream), so streams can be filled in
// any order or in parallel. xoshiro256+ uniforms, Box-Muller normals.
#include <cstddef>
#include <cstdint>

namespace ropekit {

// n standard normal floats for stream `stream` of `seed`.
void fill_standard_normal(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n);

}  // namespace ropekit
