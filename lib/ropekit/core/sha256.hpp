#pragma once
// SHA-256 (FIPS 180-4), to record which exact input a result came from.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ropekit {

// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace ropekit
