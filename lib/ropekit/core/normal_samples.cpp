#include "ropekit/core/normal_samples.hpp"

#include <algorithm>

// Every operation below is a correctly rounded IEEE double operation (+ - * / sqrt, bit moves),
// so the samples are the same bits on any machine and in every clone of fill_steps, and the numpy
// twin in tests/cli/test_rope_decay.py reproduces them exactly. CMakeLists.txt compiles this file
// with -ffp-contract=off so that no build contracts a * b + c into an FMA (one rounding, not two).

// The 512-bit vector types below never cross a call boundary (every helper is inlined into
// fill_steps), so GCC's note that their calling convention depends on AVX-512 does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// One build of fill_steps per instruction set, picked at load time (same results in each).
#if defined(__x86_64__)
#define ROPEKIT_SAMPLER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ROPEKIT_SAMPLER_CLONES
#endif

namespace ropekit {

namespace {

constexpr int kLanes = 8;  // xoshiro256+ generators per stream, one SIMD lane each
using U64s = std::uint64_t __attribute__((vector_size(8 * kLanes)));
using F64s = double __attribute__((vector_size(8 * kLanes)));
using I64s = std::int64_t __attribute__((vector_size(8 * kLanes)));
using F32s = float __attribute__((vector_size(4 * kLanes)));

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The lanes' xoshiro256+ states, word-major: s[w][lane].
struct LaneStates {
    std::uint64_t s[4][kLanes];
    LaneStates(std::uint64_t seed, std::uint64_t stream) {
        std::uint64_t state = seed ^ splitmix64(stream);
        for (int lane = 0; lane < kLanes; ++lane) {
            for (auto& word : s) word[lane] = splitmix64(state);
        }
    }
};

struct Lanes {
    U64s s0, s1, s2, s3;
    // One xoshiro256+ step of every lane.
    inline __attribute__((always_inline)) U64s next() {
        const U64s result = s0 + s3, t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = (s3 << 45) | (s3 >> 19);
        return result;
    }
};

inline __attribute__((always_inline)) F64s bits_to_double(const U64s& bits) {
    F64s out;
    __builtin_memcpy(&out, &bits, sizeof out);
    return out;
}

inline __attribute__((always_inline)) U64s double_to_bits(const F64s& value) {
    U64s out;
    __builtin_memcpy(&out, &value, sizeof out);
    return out;
}

// mask ? yes : no, lane by lane (mask lanes all ones or all zeros), as bit operations.
inline __attribute__((always_inline)) F64s select(const I64s& mask, const F64s& yes,
                                                  const F64s& no) {
    const U64s m = reinterpret_cast<U64s>(mask);
    return bits_to_double((double_to_bits(yes) & m) | (double_to_bits(no) & ~m));
}

// sqrt(-2 ln u) for u = 2 - (1.m) in (0, 1], m = the top 52 bits of `bits`.
inline __attribute__((always_inline)) F64s box_muller_radius(const U64s& bits) {
    const F64s u = 2.0 - bits_to_double((bits >> 12) | 0x3ff0000000000000ULL);
    // u = m * 2^e with m in [sqrt(1/2), sqrt(2)); e from the exponent bits via 2^52 + k - bias.
    const U64s ubits = double_to_bits(u);
    F64s m = bits_to_double((ubits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    F64s e = bits_to_double((ubits >> 52) | 0x4330000000000000ULL) - (0x1p52 + 1023.0);
    const F64s high = select(m > 1.4142135623730951, F64s{} + 1.0, F64s{});
    m = m * (1.0 - 0.5 * high);
    e = e + high;
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1)/(m + 1), |s| <= 0.1716: the
    // series to s^15 leaves a relative error below 2e-12, far under float32's 6e-8.
    const F64s s = (m - 1.0) / (m + 1.0), z = s * s;
    const F64s series =
        1.0 / 3 +
        z * (1.0 / 5 +
             z * (1.0 / 7 + z * (1.0 / 9 + z * (1.0 / 11 + z * (1.0 / 13 + z * (1.0 / 15))))));
    const F64s minus_two_log_u =
        -2.0 * (e * 0.6931471805599453 + (2.0 * s + 2.0 * s * (z * series)));
    F64s radius;
    for (int lane = 0; lane < kLanes; ++lane) radius[lane] = __builtin_sqrt(minus_two_log_u[lane]);
    return radius;
}

// Writes r cos(a) to out[0..kLanes) and r sin(a) to out[kLanes..2 kLanes), a = 2 pi * uniform:
// the top 2 bits of `bits` pick the quadrant, the next 52 the angle x in [-pi/4, pi/4) inside it.
inline __attribute__((always_inline)) void polar_to_floats(const F64s& radius, const U64s& bits,
                                                           float* out) {
    const F64s x =
        (bits_to_double(((bits >> 10) & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL) - 1.5) *
        1.5707963267948966;
    // Taylor series on |x| <= pi/4: the first omitted terms are below 3e-14 (sin) and 1e-15 (cos).
    const F64s x2 = x * x;
    const F64s sin_x =
        x + x * x2 *
                (-1.0 / 6 +
                 x2 * (1.0 / 120 +
                       x2 * (-1.0 / 5040 + x2 * (1.0 / 362880 + x2 * (-1.0 / 39916800 +
                                                                      x2 * (1.0 / 6227020800))))));
    const F64s cos_x =
        1.0 + x2 * (-1.0 / 2 +
                    x2 * (1.0 / 24 +
                          x2 * (-1.0 / 720 +
                                x2 * (1.0 / 40320 +
                                      x2 * (-1.0 / 3628800 +
                                            x2 * (1.0 / 479001600 + x2 * (-1.0 / 87178291200)))))));
    // Quadrant q: (cos, sin) of q pi/2 + x is (c, s), (-s, c), (-c, -s), (s, -c).
    const U64s quadrant = bits >> 62;
    const I64s swap = (quadrant & 1) != 0;
    const U64s cos_sign = (((quadrant + 1) >> 1) & 1) << 63, sin_sign = (quadrant >> 1) << 63;
    const F64s c = bits_to_double(double_to_bits(select(swap, sin_x, cos_x)) ^ cos_sign);
    const F64s s = bits_to_double(double_to_bits(select(swap, cos_x, sin_x)) ^ sin_sign);
    const F32s a = __builtin_convertvector(radius * c, F32s);
    const F32s b = __builtin_convertvector(radius * s, F32s);
    __builtin_memcpy(out, &a, sizeof a);
    __builtin_memcpy(out + kLanes, &b, sizeof b);
}

// `steps` x 2 kLanes samples: per step every lane draws the radius's uniform, then the angle's.
ROPEKIT_SAMPLER_CLONES void fill_steps(LaneStates& states, float* out, std::size_t steps) {
    Lanes lanes;
    __builtin_memcpy(&lanes.s0, states.s[0], sizeof lanes.s0);
    __builtin_memcpy(&lanes.s1, states.s[1], sizeof lanes.s1);
    __builtin_memcpy(&lanes.s2, states.s[2], sizeof lanes.s2);
    __builtin_memcpy(&lanes.s3, states.s[3], sizeof lanes.s3);
    for (std::size_t step = 0; step < steps; ++step) {
        const F64s radius = box_muller_radius(lanes.next());
        polar_to_floats(radius, lanes.next(), out + step * 2 * kLanes);
    }
    __builtin_memcpy(states.s[0], &lanes.s0, sizeof lanes.s0);
    __builtin_memcpy(states.s[1], &lanes.s1, sizeof lanes.s1);
    __builtin_memcpy(states.s[2], &lanes.s2, sizeof lanes.s2);
    __builtin_memcpy(states.s[3], &lanes.s3, sizeof lanes.s3);
}

}  // namespace

void fill_standard_normal(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n) {
    LaneStates states(seed, stream);
    constexpr std::size_t kStep = 2 * kLanes;
    fill_steps(states, out, n / kStep);
    if (n % kStep == 0) return;
    float last[kStep];
    fill_steps(states, last, 1);
    std::copy(last, last + n % kStep, out + n / kStep * kStep);
}

}  // namespace ropekit
