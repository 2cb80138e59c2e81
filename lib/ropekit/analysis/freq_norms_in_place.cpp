#include "ropekit/analysis/freq_norms_in_place_internal.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ropekit/analysis/chunk_norms_internal.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/finite.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/mapped_region.hpp"

namespace ropekit {
namespace {

// Floats per piece: small enough that the check and the norms find the piece in L2.
constexpr std::size_t kPieceFloats = std::size_t{64} << 10;  // 256 KiB

struct Sequence {
    const DumpReader* dump;
    std::size_t layer;
    Hook hook;
    VectorShape shape;
    const Schedule* schedule;
};

// One mapped [pos, head, dim] sequence: per piece of whole positions, widen (f16), check, add.
void add_sequence(const Sequence& q, const unsigned char* bytes, DType dtype, std::size_t batch,
                  std::size_t first, double* sums, double* unrotated) {
    const std::size_t heads = q.shape.heads, dim = q.shape.dim, vector = heads * dim;
    const std::size_t F = q.schedule->rotary_dim / 2;
    const std::size_t step = std::max<std::size_t>(1, kPieceFloats / vector);
    std::vector<float> widened(dtype == DType::f16 ? step * vector : 0);
    for (std::size_t t0 = 0; t0 < q.shape.pos; t0 += step) {
        const std::size_t n = std::min(step, q.shape.pos - t0) * vector;
        const float* v = reinterpret_cast<const float*>(bytes) + t0 * vector;
        if (dtype == DType::f16) {
            halves_to_floats(reinterpret_cast<const std::uint16_t*>(bytes) + t0 * vector,
                             widened.data(), n);
            v = widened.data();
        }
        if (!all_finite(v, n)) {
            Tensor<float> slab;
            q.dump->read_vectors(q.layer, q.hook, batch, slab);  // throws, naming the element
            throw data_error(q.dump->input().name(), q.dump->dataset(q.layer, q.hook),
                             "NaN or inf (the in-place read and HDF5 disagree)");
        }
        for (std::size_t i = (t0 < first ? first - t0 : 0) * heads; i < n / dim; ++i) {
            add_chunk_norms(v + i * dim, *q.schedule, F, sums + (i % heads) * F);
            add_unrotated_norm(v + i * dim, *q.schedule, unrotated + i % heads);
        }
    }
}

}  // namespace

bool accumulate_layer_in_place(const DumpReader& dump, std::size_t layer, Hook hook,
                               const Schedule& s, bool exclude_bos, double* sums, double* unrotated,
                               std::size_t& count) {
    const std::optional<ContiguousStorage> storage = dump.vectors_in_place(layer, hook);
    const std::size_t element = storage && storage->dtype == DType::f32 ? 4 : 2;
    if (!storage || storage->offset % element != 0) return false;  // aligned loads only
    const Sequence q{&dump, layer, hook, dump.vector_shape(layer, hook), &s};
    const std::size_t bytes = q.shape.pos * q.shape.heads * q.shape.dim * element;
    const std::size_t first = exclude_bos ? 1 : 0;
    const ReadOnlyFd fd(dump.input().path());
    for (std::size_t b = 0; b < q.shape.batch; ++b) {
        const MappedRegion region(fd.get(), dump.input().name(), storage->offset + b * bytes,
                                  bytes);
        add_sequence(q, region.data(), storage->dtype, b, first, sums, unrotated);
    }
    count = q.shape.batch * (q.shape.pos - first);
    return true;
}

}  // namespace ropekit
