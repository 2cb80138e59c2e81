#pragma once
// The weights a decoder multiplies by: a matrix [rows, cols], row-major ([out, in], as
// nn.Linear and ggml store them), held one of two ways:
//   resident  float32 in memory, used in place: a mapped llama2.c file, an aligned F32 tensor
//             of a safetensors or GGUF file, or a buffer the loader owns;
//   stored    the checkpoint's own bytes in any type ggml_types converts (F16, BF16, F32 at any
//             alignment, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K), converted to float a block of rows at a
//             time. Stored bytes that lie in a read-only file mapping have their pages released
//             once converted, so a model is never copied to float32 whole, nor held whole in
//             the resident set (docs/tools/rope-dump.md, "Memory").
// A Projection is a weight matrix and an optional bias: y = x·Wᵀ + b.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ropekit {

class WeightMatrix {
  public:
    // What happens to the pages of stored bytes once a block of rows is converted.
    enum class Pages {
        keep,     // bytes in ordinary memory
        release,  // bytes in a read-only file mapping: drop them (they stay in the page cache)
    };

    WeightMatrix() = default;
    static WeightMatrix resident(const float* data, std::size_t rows, std::size_t cols);
    // std::invalid_argument unless ggml_types converts the type and a row is whole blocks.
    static WeightMatrix stored(const std::uint8_t* data, std::uint32_t ggml_type, std::size_t rows,
                               std::size_t cols, Pages pages);

    std::size_t rows() const { return rows_; }
    std::size_t cols() const { return cols_; }
    const float* resident_data() const { return floats_; }  // nullptr when stored
    std::string type_name() const;                          // "F32", "BF16", "Q8_0", ...

    // Rows [first, first + count) as count · cols floats at `out`; std::out_of_range past the
    // last row.
    void read_rows(std::size_t first, std::size_t count, float* out) const;
    // Rows [first, first + count) as a matrix of their own, on the same storage.
    WeightMatrix row_range(std::size_t first, std::size_t count) const;

  private:
    const float* floats_ = nullptr;
    const std::uint8_t* bytes_ = nullptr;
    std::uint32_t type_ = 0;  // ggml type of bytes_
    Pages pages_ = Pages::keep;
    std::size_t rows_ = 0, cols_ = 0, row_bytes_ = 0;
};

struct Projection {
    WeightMatrix weight;          // [out, in]
    const float* bias = nullptr;  // [out], or no bias
};

// y[n, out] = x[n, in] · Wᵀ + bias + beta · y. One SGEMM per block of weight rows (converted
// first unless resident), the blocks spread over the threads, each on a single-threaded BLAS.
// The blocks depend on the shape and the thread count, never on the storage, so equal values
// give bit-identical results: a bf16 checkpoint and its float32 upcast.
void project(const float* x, std::size_t n, const Projection& p, float* y, float beta = 0.0f);

}  // namespace ropekit
