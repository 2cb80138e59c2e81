#pragma once
// Token id inputs written by people or scripts: one sequence per line, whitespace- or
// comma-separated non-negative integers. Sequences are batched, so all must have one length.
#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>

#include "ropekit/core/tensor.hpp"

namespace ropekit {

// Parses text (`source` names it in errors) into [sequences, length]. Blank lines and text after
// '#' are ignored. Throws data_error for a non-integer, an id >= vocab, no sequences, or lines of
// different lengths (with both line numbers and lengths).
Tensor<std::int64_t> parse_token_lines(std::istream& in, const std::string& source,
                                       std::size_t vocab);
// A text file, "-" for text on standard input, or an HDF5 file (recognised by its signature)
// whose integer "tokens" dataset [sequences, length] is read, such as an earlier rope-dump
// output: so held-out sequences sampled once can be evaluated under many schedules.
Tensor<std::int64_t> read_token_file(const std::string& path, std::size_t vocab);

}  // namespace ropekit
