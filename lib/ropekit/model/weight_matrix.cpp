#include "ropekit/model/weight_matrix.hpp"

#include <cblas.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/formats/gguf.hpp"

namespace ropekit {

namespace {

// Weight rows per SGEMM: as few blocks as keep each within kBlockFloats (a converted block is a
// buffer of that size per thread), in a multiple of the thread count so that every thread gets
// the same share; a multiple of 16 rows. Large blocks keep the GEMM near its peak: OpenBLAS packs
// x again for every call. The blocks depend on the shape and the thread count only, never on the
// storage.
constexpr std::size_t kBlockFloats = std::size_t{1} << 21;
constexpr std::size_t kRowMultiple = 16;

std::size_t block_rows(const WeightMatrix& w, std::size_t threads) {
    const auto round_up = [](std::size_t n, std::size_t m) { return (n + m - 1) / m * m; };
    const std::size_t fit =
        std::max(kRowMultiple,
                 kBlockFloats / std::max<std::size_t>(1, w.cols()) / kRowMultiple * kRowMultiple);
    std::size_t blocks = (w.rows() + fit - 1) / fit;
    if (w.rows() >= kRowMultiple * threads) blocks = round_up(blocks, threads);
    return round_up((w.rows() + blocks - 1) / blocks, kRowMultiple);
}

// y[n, count] (row stride ldy) = x[n, in] · w[count, in]ᵀ + beta · y
void gemm_rows(const float* x, std::size_t n, std::size_t in, const float* w, std::size_t count,
               float* y, std::size_t ldy, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n),
                static_cast<blasint>(count), static_cast<blasint>(in), 1.0f, x,
                static_cast<blasint>(in), w, static_cast<blasint>(in), beta, y,
                static_cast<blasint>(ldy));
}

void add_bias(const float* bias, std::size_t n, std::size_t count, float* y, std::size_t ldy) {
    for (std::size_t r = 0; r < n; ++r) {
        for (std::size_t j = 0; j < count; ++j) y[r * ldy + j] += bias[j];
    }
}

}  // namespace

WeightMatrix WeightMatrix::resident(const float* data, std::size_t rows, std::size_t cols) {
    WeightMatrix w;
    w.floats_ = data;
    w.rows_ = rows;
    w.cols_ = cols;
    w.row_bytes_ = cols * sizeof(float);
    return w;
}

WeightMatrix WeightMatrix::stored(const std::uint8_t* data, std::uint32_t ggml_type,
                                  std::size_t rows, std::size_t cols, Pages pages) {
    const auto row_bytes = can_dequantize(ggml_type) ? ggml_type_bytes(ggml_type, cols)
                                                     : std::optional<std::uint64_t>();
    if (!row_bytes) {
        throw std::invalid_argument(
            fmt::format("WeightMatrix: rows of {} {} values", cols, ggml_type_name(ggml_type)));
    }
    WeightMatrix w;
    w.bytes_ = data;
    w.type_ = ggml_type;
    w.pages_ = pages;
    w.rows_ = rows;
    w.cols_ = cols;
    w.row_bytes_ = static_cast<std::size_t>(*row_bytes);
    return w;
}

std::string WeightMatrix::type_name() const {
    return ggml_type_name(floats_ ? 0 : type_);
}

void WeightMatrix::read_rows(std::size_t first, std::size_t count, float* out) const {
    if (first > rows_ || count > rows_ - first) {
        throw std::out_of_range(
            fmt::format("WeightMatrix: rows [{}, {}) of {}", first, first + count, rows_));
    }
    if (floats_) {
        std::copy_n(floats_ + first * cols_, count * cols_, out);
        return;
    }
    const std::uint8_t* begin = bytes_ + first * row_bytes_;
    dequantize(type_, begin, count * cols_, out);
    if (pages_ == Pages::release) release_mapped_pages(begin, count * row_bytes_);
}

WeightMatrix WeightMatrix::row_range(std::size_t first, std::size_t count) const {
    if (first > rows_ || count > rows_ - first) {
        throw std::out_of_range(
            fmt::format("WeightMatrix: rows [{}, {}) of {}", first, first + count, rows_));
    }
    WeightMatrix w = *this;
    if (floats_) w.floats_ += first * cols_;
    if (bytes_) w.bytes_ += first * row_bytes_;
    w.rows_ = count;
    return w;
}

void project(const float* x, std::size_t n, const Projection& p, float* y, float beta) {
    const WeightMatrix& w = p.weight;
    const std::size_t in = w.cols(), out = w.rows();
    const std::size_t per_block = block_rows(w, static_cast<std::size_t>(thread_count()));
    const std::size_t blocks = (out + per_block - 1) / per_block;
    use_single_threaded_blas();
    parallel_for(blocks, [&](std::size_t begin, std::size_t end) {
        // Not zeroed: every block is converted into it before use.
        const std::unique_ptr<float[]> converted(w.resident_data() ? nullptr
                                                                   : new float[per_block * in]);
        for (std::size_t b = begin; b < end; ++b) {
            const std::size_t first = b * per_block, count = std::min(per_block, out - first);
            const float* rows =
                w.resident_data() ? w.resident_data() + first * in : converted.get();
            if (!w.resident_data()) w.read_rows(first, count, converted.get());
            gemm_rows(x, n, in, rows, count, y + first, out, beta);
            if (p.bias) add_bias(p.bias + first, n, count, y + first, out);
        }
    });
}

}  // namespace ropekit
