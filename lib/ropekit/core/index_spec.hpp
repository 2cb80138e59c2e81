#pragma once
// Index lists written by people: "all", "3", "0-3,7", "-2" (second from last). Used for
// --layers, --heads and similar options.
#include <cstddef>
#include <string>
#include <vector>

namespace ropekit {

// The comma-separated items of an option's value, empty ones kept ("a,,b" -> a, "", b) so the
// caller can name them in its error.
std::vector<std::string> split_list(const std::string& text, char separator = ',');

// Sorted, de-duplicated indices in [0, count). Throws usage_error naming `option` for anything
// malformed or out of range, e.g. "--layers: index 9 is past the last layer (4)".
std::vector<std::size_t> parse_index_spec(const std::string& spec, std::size_t count,
                                          const std::string& option);

}  // namespace ropekit
