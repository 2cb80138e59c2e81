// freq-norms' chunk-norm kernel against a double-precision reference: every vector width (the
// AVX-512/AVX/SSE path this CPU takes plus the scalar tail), both layouts, extreme values, and
// the NaN/inf propagation that the in-place reader's finiteness check relies on.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ropekit/analysis/chunk_norms_internal.hpp"
#include "ropekit/core/dtype.hpp"
#include "ropekit/core/normal_samples.hpp"

using namespace ropekit;

namespace {

double reference_norm(const std::vector<float>& v, const Schedule& s, std::size_t k) {
    const auto [a, b] = s.chunk_dims(k);
    return std::hypot(static_cast<double>(v[a]), static_cast<double>(v[b]));
}

}  // namespace

TEST_CASE("chunk norms: within float rounding of hypot in double, overflow and underflow exact") {
    for (const Layout layout : {Layout::half, Layout::interleaved}) {
        // rotary_dim 74 (37 chunks: 16 + 16 + 4 + 1 scalar) and 256 (128 chunks) in d = 260.
        for (std::size_t rotary : {74, 256}) {
            CAPTURE(rotary);
            const Schedule s = make_schedule(260, 1e4, layout, rotary);
            const std::size_t F = rotary / 2;
            std::vector<float> v(260);
            fill_standard_normal(11, rotary, v.data(), v.size());
            v[s.chunk_dims(3).first] = 3e19f;    // the float square overflows
            v[s.chunk_dims(20).first] = 1e-30f;  // both squares underflow
            v[s.chunk_dims(20).second] = -2e-30f;
            std::vector<double> out(F, 0.0);
            add_chunk_norms(v.data(), s, F, out.data());
            add_chunk_norms(v.data(), s, F, out.data());  // adds: twice the norm
            for (std::size_t k = 0; k < F; ++k) {
                CAPTURE(k);
                const double want = 2 * reference_norm(v, s, k);
                // Float squares and sqrt: below 2e-7 relative. The out-of-range chunks go
                // through double and match hypot to 1e-15.
                const double tolerance = (k == 3 || k == 20) ? 1e-15 : 2e-7;
                CHECK(std::abs(out[k] - want) <= tolerance * want);
            }
        }
    }
}

TEST_CASE("chunk norms: a NaN or inf anywhere makes its chunk's sum NaN or inf") {
    const Schedule s = make_schedule(64, 1e4, Layout::half);
    for (std::size_t dim = 0; dim < 64; ++dim) {
        for (const float bad :
             {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
              -std::numeric_limits<float>::infinity()}) {
            std::vector<float> v(64, 0.5f);
            v[dim] = bad;
            std::vector<double> out(32, 0.0);
            add_chunk_norms(v.data(), s, 32, out.data());
            const std::size_t chunk = dim % 32;
            CHECK_FALSE(std::isfinite(out[chunk]));
            for (std::size_t k = 0; k < 32; ++k) {
                if (k != chunk) CHECK(out[k] == doctest::Approx(std::sqrt(0.5)));
            }
        }
    }
}

TEST_CASE("chunk norms: the AVX-512, AVX and SSE paths give the same bits") {
    for (std::size_t rotary : {74, 256}) {
        CAPTURE(rotary);
        const Schedule s = make_schedule(260, 1e4, Layout::half, rotary);
        const std::size_t F = rotary / 2;
        std::vector<float> v(260);
        fill_standard_normal(12, rotary, v.data(), v.size());
        v[s.chunk_dims(17).first] = 3e19f;  // one vector of each width takes the double path
        std::vector<std::vector<double>> outs;
        for (int lanes : {16, 8, 4}) {
            std::vector<double> out(F, 0.5);
            for (int repeat = 0; repeat < 3; ++repeat) {
                add_chunk_norms_lanes(v.data(), s, F, out.data(), lanes);
            }
            outs.push_back(out);
        }
        CHECK(outs[0] == outs[1]);
        CHECK(outs[0] == outs[2]);
    }
}

TEST_CASE("chunk norms from f16 halves widened in registers: the same bits as widening first") {
    const Schedule s = make_schedule(128, 1e4, Layout::half);
    if (!f16_norms_in_registers(s)) return;  // no AVX-512F here: freq-norms widens first
    std::vector<float> values(128);
    fill_standard_normal(13, 0, values.data(), values.size());
    values[5] = 60000.0f;  // near the f16 maximum
    values[70] = 3e-7f;    // an f16 subnormal
    std::vector<std::uint16_t> halves(128);
    floats_to_halves(values.data(), halves.data(), halves.size());
    std::vector<float> widened(128);
    halves_to_floats(halves.data(), widened.data(), widened.size());
    std::vector<double> fused(64, 0.25), reference(64, 0.25);
    add_chunk_norms_f16(halves.data(), s, 64, fused.data());
    add_chunk_norms(widened.data(), s, 64, reference.data());
    CHECK(fused == reference);
    halves[9] = 0x7c00;  // +inf
    add_chunk_norms_f16(halves.data(), s, 64, fused.data());
    CHECK_FALSE(std::isfinite(fused[9]));
}
