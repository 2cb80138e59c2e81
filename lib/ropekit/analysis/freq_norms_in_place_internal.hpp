#pragma once
// freq-norms' fast reader: contiguous f32/f16 vector datasets read straight from the file, one
// mapped sequence at a time, with the NaN/inf check and the chunk norms fused into one pass over
// L2-sized pieces (HDF5's reader copies every byte out of the page cache first).
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/dump/dump_reader.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

// Where each sequence of one (layer, hook) sits, in whichever of the dump's files holds it.
struct InPlaceVectors {
    std::vector<SequenceInPlace> sequences;  // the reader's sequences, in order
    VectorShape shape;
};

// `shape` is dump.vector_shape(layer, hook). Calls HDF5, so the calling thread only. nullopt when
// some sequence cannot be read in place (the caller then reads the dataset through HDF5), also when
// its offset is not aligned to its element size.
std::optional<InPlaceVectors> find_vectors_in_place(const DumpReader& dump, std::size_t layer,
                                                    Hook hook, const VectorShape& shape);

// Adds the chunk norms of every sequence to sums [head x F] and the unrotated dims' norms to
// unrotated [head] (partial rotary only). No HDF5 calls: safe on any thread, one call per
// (layer, hook). Returns the first sequence holding a NaN or inf (sums are then incomplete; the
// caller names the element through DumpReader::read_vectors), or nullopt.
std::optional<std::size_t> add_vectors_in_place(const InPlaceVectors& in, const Schedule& s,
                                                bool exclude_bos, double* sums, double* unrotated);

}  // namespace ropekit
