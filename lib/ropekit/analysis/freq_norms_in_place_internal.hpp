#pragma once
// freq-norms' fast reader: contiguous f32/f16 vector datasets read straight from the file, one
// mapped sequence at a time, with the NaN/inf check and the chunk norms fused into one pass over
// L2-sized pieces (HDF5's reader copies every byte out of the page cache first).
#include <cstddef>

#include "ropekit/dump/dump_reader.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

// Adds the chunk norms of every sequence of (layer, hook) to sums [head x F], the unrotated
// dims' norms to unrotated [head] (partial rotary only), and sets `count` to
// the positions used, like the HDF5 path does. False, having read nothing, when the dataset
// cannot be read in place (the caller then reads it through HDF5). On NaN/inf it throws
// read_vectors's data_error.
bool accumulate_layer_in_place(const DumpReader& dump, std::size_t layer, Hook hook,
                               const Schedule& s, bool exclude_bos, double* sums, double* unrotated,
                               std::size_t& count);

}  // namespace ropekit
