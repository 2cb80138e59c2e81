#include "ropekit/hdf5/row_blocks.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

RowBlocks::RowBlocks(const H5Input& in, std::string dataset, std::size_t block_rows)
    : in_(&in), dataset_(std::move(dataset)) {
    shape_ = in.info(dataset_).shape;
    if (shape_.empty() || shape_.back() == 0) {
        throw data_error(in.name(), dataset_, "expected vectors shaped [..., d], found a scalar");
    }
    width_ = shape_.back();
    const std::size_t leading = shape_.size() - 1;
    rows_ = 1;
    for (std::size_t a = 0; a < leading; ++a) rows_ *= shape_[a];
    // The outermost leading axis whose trailing rows fit in a block.
    split_axis_ = leading == 0 ? 0 : leading - 1;
    unit_ = 1;
    while (split_axis_ > 0 && unit_ * shape_[split_axis_] <= std::max<std::size_t>(block_rows, 1)) {
        unit_ *= shape_[split_axis_];
        --split_axis_;
    }
    units_per_block_ = std::max<std::size_t>(1, block_rows / unit_);
    if (leading > 0) units_per_block_ = std::min(units_per_block_, shape_[split_axis_]);
}

std::size_t RowBlocks::next(float* out) {
    if (done_ >= rows_) return 0;
    const std::size_t leading = shape_.size() - 1;
    if (leading == 0) {  // a single vector
        in_->read_slab(dataset_, {0}, {width_}, out);
        done_ = rows_;
        return 1;
    }
    // Position of row done_ as (outer index, index on the split axis).
    const std::size_t per_outer = unit_ * shape_[split_axis_];
    std::size_t outer = done_ / per_outer;
    const std::size_t along = (done_ % per_outer) / unit_;
    const std::size_t count_along = std::min(units_per_block_, shape_[split_axis_] - along);
    Shape start(shape_.size(), 0), count(shape_);
    for (std::size_t a = split_axis_; a-- > 0;) {
        start[a] = outer % shape_[a];
        count[a] = 1;
        outer /= shape_[a];
    }
    start[split_axis_] = along;
    count[split_axis_] = count_along;
    in_->read_slab(dataset_, start, count, out);
    const std::size_t n = count_along * unit_;
    done_ += n;
    return n;
}

void read_rows(const H5Input& in, const std::string& dataset, std::size_t first, std::size_t count,
               float* out) {
    const Shape shape = in.info(dataset).shape;
    if (shape.empty()) throw data_error(in.name(), dataset, "expected vectors shaped [..., d]");
    const std::size_t width = shape.back(), leading = shape.size() - 1;
    if (leading == 0) {
        if (first == 0 && count == 1) in.read_slab(dataset, {0}, {width}, out);
        return;
    }
    std::vector<std::size_t> inner(leading, 1);  // rows per step on each leading axis
    for (std::size_t a = leading - 1; a-- > 0;) inner[a] = inner[a + 1] * shape[a + 1];
    for (std::size_t row = first, left = count; left > 0;) {
        // The outermost axis on which a slab can start here: every axis inside it at index 0 and
        // at least one whole step of it still wanted.
        std::size_t axis = leading - 1;
        while (axis > 0 && row % inner[axis - 1] == 0 && inner[axis - 1] <= left) --axis;
        Shape start(shape.size(), 0), cnt(shape.size(), 1);
        for (std::size_t a = 0, rest = row; a < leading; ++a) {
            start[a] = rest / inner[a];
            rest %= inner[a];
        }
        for (std::size_t a = axis + 1; a < leading; ++a) cnt[a] = shape[a];
        cnt[axis] = std::min(shape[axis] - start[axis], left / inner[axis]);
        cnt.back() = width;
        in.read_slab(dataset, start, cnt, out);
        const std::size_t n = cnt[axis] * inner[axis];
        out += n * width;
        row += n;
        left -= n;
    }
}

std::vector<double> read_row(const H5Input& in, const std::string& dataset, std::size_t row,
                             std::size_t width) {
    const Shape shape = in.info(dataset).shape;
    if (shape.empty() || shape.back() != width) {
        throw data_error(
            in.name(), dataset,
            fmt::format("expected vectors of {} values in the last axis, found shape {}", width,
                        shape_string(shape)));
    }
    const std::size_t rows = element_count(shape) / width;
    if (row >= rows) {
        throw data_error(in.name(), dataset,
                         fmt::format("expected a row below {}, asked for row {}", rows, row));
    }
    Shape start(shape.size(), 0), count(shape.size(), 1);
    count.back() = width;
    for (std::size_t a = shape.size() - 1, rest = row; a-- > 0;) {
        start[a] = rest % shape[a];
        rest /= shape[a];
    }
    std::vector<double> out(width);
    in.read_slab(dataset, start, count, out.data());
    return out;
}

}  // namespace ropekit
