// Weight matrices resident or stored in a checkpoint's own type, and the blocked projection
// over them: against a plain double-precision product written here, and bit for bit between
// equal values held either way.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <vector>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/formats/ggml_types.hpp"
#include "ropekit/model/weight_matrix.hpp"
#include "test_support.hpp"

using namespace ropekit;
using namespace ropekit::test;

namespace {

constexpr auto kBf16 = static_cast<std::uint32_t>(GgmlType::bf16);
constexpr auto kQ8_0 = static_cast<std::uint32_t>(GgmlType::q8_0);

std::vector<float> normal_floats(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

// y[r, o] = Σ_i x[r, i] w[o, i] + bias[o], in double.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias, std::size_t n, std::size_t in) {
    const std::size_t out = w.size() / in;
    std::vector<double> y(n * out);
    for (std::size_t r = 0; r < n; ++r) {
        for (std::size_t o = 0; o < out; ++o) {
            double sum = bias.empty() ? 0.0 : bias[o];
            for (std::size_t i = 0; i < in; ++i) sum += double{x[r * in + i]} * w[o * in + i];
            y[r * out + o] = sum;
        }
    }
    return y;
}

double largest_difference(const std::vector<float>& got, const std::vector<double>& want) {
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(got[i] - want[i]));
    return worst;
}

// A Q8_0 matrix [rows, 64] built by hand: block j of row r has d = 0.25 (f16 0x3400) and
// codes q[i] = (7r + 3j + i) mod 255 − 127, so value (r, 32j + i) is 0.25 · q[i].
std::vector<std::uint8_t> q8_0_matrix(std::size_t rows, std::vector<float>& values) {
    std::vector<std::uint8_t> bytes;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t j = 0; j < 2; ++j) {
            bytes.push_back(0x00);
            bytes.push_back(0x34);
            for (std::size_t i = 0; i < 32; ++i) {
                const int q = static_cast<int>((7 * r + 3 * j + i) % 255) - 127;
                bytes.push_back(static_cast<std::uint8_t>(static_cast<std::int8_t>(q)));
                values.push_back(0.25f * static_cast<float>(q));
            }
        }
    }
    return bytes;
}

}  // namespace

TEST_CASE("a stored BF16 matrix projects bit for bit as its float32 upcast, on 1 or 2 threads") {
    // 600 rows of 1024: one block on 1 thread, two on 2. OpenBLAS sums each output over the
    // whole row whatever the split, so even the thread count changes no bit (measured here).
    const std::size_t out = 600, in = 1024, n = 5;
    std::vector<std::uint16_t> bits(out * in);
    std::vector<float> upcast(out * in);
    const std::vector<float> source = normal_floats(out * in, 1);
    for (std::size_t i = 0; i < bits.size(); ++i) {
        bits[i] = float_to_bf16(source[i]);
        upcast[i] = bf16_to_float(bits[i]);
    }
    const std::vector<float> x = normal_floats(n * in, 2), bias = normal_floats(out, 3);
    const Projection resident{WeightMatrix::resident(upcast.data(), out, in), bias.data()};
    const Projection stored{WeightMatrix::stored(reinterpret_cast<const std::uint8_t*>(bits.data()),
                                                 kBf16, out, in, WeightMatrix::Pages::keep),
                            bias.data()};
    CHECK(stored.weight.type_name() == "BF16");
    CHECK(resident.weight.type_name() == "F32");
    const std::vector<double> want = reference(x, upcast, bias, n, in);
    std::vector<float> first;
    for (int threads : {1, 2}) {
        CAPTURE(threads);
        set_thread_count(threads);
        std::vector<float> a(n * out), b(n * out);
        project(x.data(), n, resident, a.data());
        project(x.data(), n, stored, b.data());
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
        CHECK(largest_difference(b, want) < 1e-3);  // 1024 products of N(0, 1) values in float
        if (first.empty()) first = b;
        CHECK(std::memcmp(first.data(), b.data(), b.size() * sizeof(float)) == 0);
    }
    set_thread_count(0);
}

TEST_CASE("beta = 1 adds the projection to what y holds (the residual stream)") {
    const std::size_t out = 40, in = 64, n = 3;
    const std::vector<float> w = normal_floats(out * in, 4), x = normal_floats(n * in, 5);
    std::vector<float> y(n * out, 2.5f);
    project(x.data(), n, {WeightMatrix::resident(w.data(), out, in), nullptr}, y.data(), 1.0f);
    std::vector<double> want = reference(x, w, {}, n, in);
    for (double& v : want) v += 2.5;
    CHECK(largest_difference(y, want) < 1e-4);
}

TEST_CASE("Q8_0 rows convert to d times the code, a block of rows at a time") {
    std::vector<float> values;
    const std::vector<std::uint8_t> bytes = q8_0_matrix(40, values);
    const WeightMatrix w =
        WeightMatrix::stored(bytes.data(), kQ8_0, 40, 64, WeightMatrix::Pages::keep);
    std::vector<float> rows(2 * 64);
    w.read_rows(3, 2, rows.data());
    CHECK(rows[0] == 0.25f * static_cast<float>(21 - 127));        // row 3, block 0, code 21
    CHECK(rows[64 + 33] == 0.25f * static_cast<float>(32 - 127));  // row 4, block 1, i = 1
    const std::vector<float> x = normal_floats(2 * 64, 6);
    std::vector<float> y(2 * 40);
    project(x.data(), 2, {w, nullptr}, y.data());
    CHECK(largest_difference(y, reference(x, values, {}, 2, 64)) < 1e-3);
    // A range of rows is a matrix of its own on the same bytes.
    const WeightMatrix tail = w.row_range(30, 10);
    CHECK(tail.rows() == 10);
    std::vector<float> row(64);
    tail.read_rows(1, 1, row.data());
    CHECK(std::equal(row.begin(), row.end(), values.begin() + 31 * 64));
}

TEST_CASE("stored bytes in a file mapping read the same after their pages were released") {
    TempDir dir;
    std::vector<float> values;
    const std::vector<std::uint8_t> bytes = q8_0_matrix(2000, values);  // 136 kB: 33 pages
    std::ofstream(dir.file("w.bin"), std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    const MappedFile file = MappedFile::open(dir.file("w.bin"));
    const WeightMatrix w =
        WeightMatrix::stored(file.data(), kQ8_0, 2000, 64, WeightMatrix::Pages::release);
    std::vector<float> all(2000 * 64);
    for (int pass = 0; pass < 2; ++pass) {
        w.read_rows(0, 2000, all.data());
        CHECK(all == values);
    }
}

TEST_CASE("types that do not convert, partial blocks and rows past the end are refused") {
    const std::vector<std::uint8_t> bytes(34 * 4);
    CHECK_THROWS_AS(WeightMatrix::stored(bytes.data(), kQ8_0, 2, 48, WeightMatrix::Pages::keep),
                    std::invalid_argument);
    CHECK_THROWS_AS(
        WeightMatrix::stored(bytes.data(), 3 /* Q4_1 */, 2, 64, WeightMatrix::Pages::keep),
        std::invalid_argument);
    const WeightMatrix w =
        WeightMatrix::stored(bytes.data(), kQ8_0, 2, 64, WeightMatrix::Pages::keep);
    std::vector<float> out(64);
    CHECK_THROWS_AS(w.read_rows(2, 1, out.data()), std::out_of_range);
    CHECK_THROWS_AS(w.row_range(1, 2), std::out_of_range);
}
