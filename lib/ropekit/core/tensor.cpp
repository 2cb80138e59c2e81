#include "ropekit/core/tensor.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ropekit {

std::string shape_string(const Shape& shape) {
    return fmt::format("[{}]", fmt::join(shape, ", "));
}

}  // namespace ropekit
