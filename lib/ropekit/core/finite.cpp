#include "ropekit/core/finite.hpp"

#include <cstdint>
#include <cstring>

namespace ropekit {

// The first pass over every byte freq-norms maps (memory-bound): compiled for AVX-512, AVX2 and
// the baseline, picked at load time; same answer from each.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool all_finite(const float* p,
                                                                             std::size_t n) {
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, p + i, sizeof bits);
        bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

}  // namespace ropekit
