#pragma once
// e^x for x <= 0 in plain float arithmetic, so that the loops calling it vectorise (libm's expf
// is a call per element): the exponentials of softmax, log-sum-exp and SiLU.
#include <cstdint>
#include <cstring>

namespace ropekit {

namespace exp_detail {
inline std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline float float_of(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
}  // namespace exp_detail

// Within 2 ulp of expf: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and Cephes' degree-6
// polynomial. Returns 0 below -87.3 (where expf underflows to subnormals) and for -inf.
inline float exp_nonpositive(float input) {
    using exp_detail::bits_of;
    using exp_detail::float_of;
    // Integer masks instead of ?: on floats: GCC does not if-convert those (they might trap),
    // and a branch in the loop would stop vectorisation.
    const std::uint32_t keep = 0u - static_cast<std::uint32_t>(input > -87.3f);
    const float x = float_of((bits_of(input) & keep) | (bits_of(-87.3f) & ~keep));
    const float round = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const float n = (x * 1.44269504088896341f + round) - round;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    const float z = r * r;
    const float y = ((((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                        4.1665795894e-2f) *
                           r +
                       1.6666665459e-1f) *
                          r +
                      5.0000001201e-1f) *
                         z +
                     r) +
                    1.0f;
    const float scale =
        float_of(static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23);
    return float_of(bits_of(y * scale) & keep);
}

}  // namespace ropekit
