#pragma once
// Streams the rows of a dataset shaped [..., width] (every leading axis flattened, row-major) in
// blocks of bounded size, one hyperslab per block, so inputs of any size use bounded memory.
#include <cstddef>
#include <string>
#include <vector>

#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

class RowBlocks {
  public:
    // Blocks hold at most max(block_rows, rows of one trailing slab) rows; see block_capacity().
    RowBlocks(const H5Input& in, std::string dataset, std::size_t block_rows);

    std::size_t width() const { return width_; }
    std::size_t rows() const { return rows_; }
    std::size_t block_capacity() const { return unit_ * units_per_block_; }
    const Shape& shape() const { return shape_; }

    // Reads the next block into `out` (block_capacity() * width() floats); returns its row
    // count, 0 at the end.
    std::size_t next(float* out);

  private:
    const H5Input* in_;
    std::string dataset_;
    Shape shape_;
    std::size_t width_ = 0, rows_ = 0;
    std::size_t split_axis_ = 0;  // reads are ranges on this axis, whole extents after it
    std::size_t unit_ = 1;        // rows per step on the split axis
    std::size_t units_per_block_ = 1;
    std::size_t done_ = 0;  // rows read so far
};

// Rows [first, first + count) (leading axes flattened) of a dataset shaped [..., width] into
// `out`, with as few hyperslab reads as the shape allows.
void read_rows(const H5Input& in, const std::string& dataset, std::size_t first, std::size_t count,
               float* out);

// Row `row` (leading axes flattened) of a dataset shaped [..., width], as double. data_error if
// the last axis is not `width` or the row does not exist.
std::vector<double> read_row(const H5Input& in, const std::string& dataset, std::size_t row,
                             std::size_t width);

}  // namespace ropekit
