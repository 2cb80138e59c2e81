#pragma once
// The value of an HDF5 attribute as ropekit reads and writes it: a string, a number, or a
// one-dimensional array of either.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace ropekit {

using AttrValue = std::variant<std::string, double, std::int64_t, std::vector<double>,
                               std::vector<std::int64_t>, std::vector<std::string>>;

}  // namespace ropekit
