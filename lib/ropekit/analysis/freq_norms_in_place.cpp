#include "ropekit/analysis/freq_norms_in_place_internal.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/analysis/chunk_norms_internal.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/finite.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/mapped_region.hpp"

namespace ropekit {
namespace {

// Bytes mapped at once: one 8 MB sequence of the bench's Gemma-7B-shaped dump, or a run of shorter
// sequences of the same file (the resident set stays about this much per thread).
constexpr std::uint64_t kMapBytes = std::uint64_t{8} << 20;

// Floats per piece of an f16 sequence, widened into a buffer that stays in L2.
constexpr std::size_t kPieceFloats = std::size_t{64} << 10;  // 256 KiB

bool sums_finite(const double* v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(v[i])) return false;
    }
    return true;
}

// One mapped [pos, head, dim] sequence, in pieces of whole positions (f16: widened first). No
// separate NaN/inf pass over the data: every element of a summed position enters a chunk norm
// (or the unrotated dims' norm), which a NaN or inf makes NaN or inf, and so its sum (norms are
// >= 0: no inf - inf). So the sums are checked after the sequence, and the positions left out
// (the BOS) on their own. False when the sequence holds a NaN or inf.
// f16 with every dim rotating, widened inside the norm kernel; false if it cannot (the caller
// then widens piece by piece), or if the sequence holds a NaN or inf (bad = true).
bool add_f16_sequence_fused(const std::uint16_t* halves, const VectorShape& shape,
                            const Schedule& s, std::size_t first, double* sums, bool& bad) {
    const std::size_t heads = shape.heads, dim = shape.dim, F = s.rotary_dim / 2;
    if (s.rotary_dim != dim || !f16_norms_in_registers(s)) return false;
    std::vector<float> skipped(first * heads * dim);  // the BOS rows: checked, not summed
    halves_to_floats(halves, skipped.data(), skipped.size());
    bad = !all_finite(skipped.data(), skipped.size());
    for (std::size_t i = first * heads; !bad && i < shape.pos * heads; ++i) {
        add_chunk_norms_f16(halves + i * dim, s, F, sums + (i % heads) * F);
    }
    bad = bad || !sums_finite(sums, heads * F);
    return true;
}

bool add_sequence(const unsigned char* bytes, DType dtype, const VectorShape& shape,
                  const Schedule& s, std::size_t first, double* sums, double* unrotated) {
    bool bad = false;
    if (dtype == DType::f16 && add_f16_sequence_fused(reinterpret_cast<const std::uint16_t*>(bytes),
                                                      shape, s, first, sums, bad)) {
        return !bad;
    }
    const std::size_t heads = shape.heads, dim = shape.dim, vector = heads * dim;
    const std::size_t F = s.rotary_dim / 2;
    const std::size_t step = std::max<std::size_t>(1, kPieceFloats / vector);
    std::vector<float> widened(dtype == DType::f16 ? step * vector : 0);
    for (std::size_t t0 = 0; t0 < shape.pos; t0 += step) {
        const std::size_t n = std::min(step, shape.pos - t0) * vector;
        const float* v = reinterpret_cast<const float*>(bytes) + t0 * vector;
        if (dtype == DType::f16) {
            halves_to_floats(reinterpret_cast<const std::uint16_t*>(bytes) + t0 * vector,
                             widened.data(), n);
            v = widened.data();
        }
        const std::size_t skipped = std::min(t0 < first ? first - t0 : 0, n / vector);
        if (!all_finite(v, skipped * vector)) return false;
        for (std::size_t i = skipped * heads; i < n / dim; ++i) {
            add_chunk_norms(v + i * dim, s, F, sums + (i % heads) * F);
            add_unrotated_norm(v + i * dim, s, unrotated + i % heads);
        }
    }
    return sums_finite(sums, heads * F) &&
           (s.rotary_dim >= s.head_dim || sums_finite(unrotated, heads));
}

}  // namespace

std::optional<InPlaceVectors> find_vectors_in_place(const DumpReader& dump, std::size_t layer,
                                                    Hook hook, const VectorShape& shape) {
    InPlaceVectors in{{}, shape};
    for (std::size_t b = 0; b < in.shape.batch; ++b) {
        std::optional<SequenceInPlace> sequence = dump.sequence_in_place(layer, hook, b);
        const std::size_t element = sequence && sequence->dtype == DType::f32 ? 4 : 2;
        if (!sequence || sequence->offset % element != 0) return std::nullopt;  // aligned loads
        in.sequences.push_back(std::move(*sequence));
    }
    return in;
}

std::optional<std::size_t> add_vectors_in_place(const InPlaceVectors& in, const Schedule& s,
                                                bool exclude_bos, double* sums, double* unrotated) {
    const std::vector<SequenceInPlace>& sequences = in.sequences;
    for (std::size_t b = 0; b < sequences.size();) {
        // One mapping for a run of sequences that follow each other in one file, up to about
        // kMapBytes: short sequences (a few KB) cost a system call pair each otherwise.
        const SequenceInPlace& head = sequences[b];
        std::size_t end = b + 1;
        std::uint64_t bytes = head.bytes;
        while (end < sequences.size() && sequences[end].path == head.path &&
               sequences[end].offset == head.offset + bytes && bytes + head.bytes <= kMapBytes) {
            bytes += sequences[end++].bytes;
        }
        const ReadOnlyFd fd(head.path);
        const MappedRegion region(fd.get(), head.file_name, head.offset, bytes);
        for (std::size_t i = b; i < end; ++i) {
            if (!add_sequence(region.data() + (i - b) * head.bytes, head.dtype, in.shape, s,
                              exclude_bos ? 1 : 0, sums, unrotated)) {
                return i;
            }
        }
        b = end;
    }
    return std::nullopt;
}

}  // namespace ropekit
