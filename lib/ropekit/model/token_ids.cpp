#include "ropekit/model/token_ids.hpp"

#include <fstream>
#include <iostream>
#include <vector>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace ropekit {

Tensor<std::int64_t> parse_token_lines(std::istream& in, const std::string& source,
                                       std::size_t vocab) {
    std::vector<std::int64_t> ids;
    std::size_t length = 0, first_line = 0, sequences = 0, line_number = 0;
    for (std::string line; std::getline(in, line);) {
        ++line_number;
        line = line.substr(0, line.find('#'));
        std::size_t count = 0;
        for (std::size_t i = 0; i < line.size();) {
            const char ch = line[i];
            if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\r') {
                ++i;
                continue;
            }
            std::size_t end = i;
            std::int64_t value = 0;
            while (end < line.size() && line[end] >= '0' && line[end] <= '9' &&
                   value <= static_cast<std::int64_t>(vocab)) {
                value = value * 10 + (line[end] - '0');
                ++end;
            }
            const bool separated = end == line.size() || line[end] == ' ' || line[end] == '\t' ||
                                   line[end] == ',' || line[end] == '\r';
            if (end == i || !separated) {
                throw data_error(source, fmt::format("line {}", line_number),
                                 fmt::format("expected non-negative integer token ids, found '{}'",
                                             line.substr(i, line.find_first_of(" \t,", i) - i)));
            }
            if (static_cast<std::size_t>(value) >= vocab) {
                throw data_error(source, fmt::format("line {}", line_number),
                                 fmt::format("token id {} is outside the model's vocabulary "
                                             "[0, {})",
                                             line.substr(i, end - i), vocab));
            }
            ids.push_back(value);
            ++count;
            i = end;
        }
        if (count == 0) continue;
        if (sequences == 0) {
            length = count;
            first_line = line_number;
        } else if (count != length) {
            throw data_error(source, fmt::format("line {}", line_number),
                             fmt::format("has {} ids but line {} has {}: sequences are batched, "
                                         "so all must have the same length (split or trim them)",
                                         count, first_line, length));
        }
        ++sequences;
    }
    if (sequences == 0) throw data_error(source, "", "expected at least one line of token ids");
    Tensor<std::int64_t> out({sequences, length});
    out.data = std::move(ids);
    return out;
}

namespace {

Tensor<std::int64_t> read_hdf5_tokens(const std::string& path, std::size_t vocab) {
    const H5Input in = H5Input::open(path);
    if (!in.has("tokens")) {
        throw data_error(path, "tokens", "expected a [sequences, length] dataset of token ids");
    }
    Tensor<std::int64_t> ids = in.read_int64("tokens");
    if (ids.rank() != 2 || ids.size() == 0) {
        throw data_error(path, "tokens",
                         fmt::format("expected a non-empty [sequences, length] dataset, found {}",
                                     shape_string(ids.shape)));
    }
    for (std::int64_t id : ids.data) {
        if (id < 0 || static_cast<std::size_t>(id) >= vocab) {
            throw data_error(
                path, "tokens",
                fmt::format("token id {} is outside the model's vocabulary [0, {})", id, vocab));
        }
    }
    return ids;
}

}  // namespace

Tensor<std::int64_t> read_token_file(const std::string& path, std::size_t vocab) {
    if (path == "-") return parse_token_lines(std::cin, "<stdin>", vocab);
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path, "", "cannot open the token file");
    char signature[8] = {};
    in.read(signature, sizeof signature);
    if (in.gcount() == 8 && std::string(signature, 8) == "\x89HDF\r\n\x1a\n") {
        return read_hdf5_tokens(path, vocab);
    }
    in.clear();
    in.seekg(0);
    return parse_token_lines(in, path, vocab);
}

}  // namespace ropekit
