#pragma once
// The synthetic activation dump that `make demo` and the tests analyse: a small model in the
// TransformerLens layout of dump.hpp with known answers planted in it.
//  - positional heads built as in Theorem 5.3 from the four highest frequencies: queries psi
//    rotated by -r, keys psi at every position, so attention peaks r tokens back (r = 0
//    diagonal, r = 1 previous token, r = 3);
//  - "semantic" heads whose per-token queries and keys carry most of their norm in a few
//    low-frequency chunks (the paper's bands), little in the high frequencies;
//  - GQA: fewer key heads than query heads.
// What was planted is recorded in root attributes (JSON strings) so tests can check tools
// against it.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ropekit/core/dtype.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

struct DemoDumpSpec {
    std::size_t layers = 3;
    std::size_t heads = 4;
    std::size_t kv_heads = 2;
    std::size_t head_dim = 32;
    std::size_t batch = 2;
    std::size_t tokens = 128;
    double theta = 10000.0;
    std::uint64_t seed = 2025;
    DType stored = DType::f32;
};

struct PlantedHead {
    std::size_t layer, head, offset;
};
struct PlantedBand {
    std::size_t layer, head, frequency;  // query head; frequency index 0 = highest
};

// The heads the demo plants, for a spec with at least 3 layers, 4 heads and 2 kv heads.
std::vector<PlantedHead> demo_planted_heads();
std::vector<PlantedBand> demo_planted_bands(const DemoDumpSpec& spec);

// Writes every hook of every layer plus root attributes (rope_theta, rope_layout=half,
// rotary_dim, bos=0, model, planted_heads, planted_bands). Throws usage_error for specs too
// small to hold the planted heads.
// `layer_done(done, total)` after each layer (progress).
void write_demo_dump(H5Output& out, const DemoDumpSpec& spec,
                     const std::function<void(std::size_t, std::size_t)>& layer_done = {});

}  // namespace ropekit
