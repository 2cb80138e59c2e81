#include "ropekit/tokenize/token_stream.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

std::string read_text(const std::string& path) {
    std::ostringstream text;
    if (path == "-") {
        text << std::cin.rdbuf();
        return text.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path, "", "cannot open the text file");
    text << in.rdbuf();
    if (in.bad()) throw data_error(path, "", "read failed");
    return text.str();
}

void for_each_line(std::string_view text,
                   const std::function<void(std::size_t, std::string_view)>& line) {
    std::size_t number = 0;
    for (std::size_t at = 0; at < text.size();) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        line(++number, text.substr(at, end - at));
        at = end + 1;
    }
}

TokenStream encode_documents(const Tokenizer& tokenizer, std::string_view text, bool whole,
                             const std::string& source) {
    TokenStream stream;
    const bool separate =
        tokenizer.prefix().empty() && tokenizer.suffix().empty() && tokenizer.eos();
    const auto add = [&](std::string_view document, const std::string& where) {
        try {
            const std::vector<TokenId> ids = tokenizer.encode(document);
            stream.ids.insert(stream.ids.end(), ids.begin(), ids.end());
        } catch (const Error& e) {
            throw data_error(source, where, e.what());
        }
        if (separate) stream.ids.push_back(*tokenizer.eos());
        ++stream.documents;
    };
    if (whole) {
        if (!text.empty()) add(text, "");
    } else {
        for_each_line(text, [&](std::size_t number, std::string_view line) {
            if (!line.empty()) add(line, fmt::format("line {}", number));
        });
    }
    if (stream.documents == 0) throw data_error(source, "", "expected some text, found none");
    return stream;
}

Windows cut_windows(const std::vector<TokenId>& stream, std::size_t length, std::size_t stride,
                    const std::string& source) {
    if (length < 2) throw usage_error("--length must be at least 2 tokens");
    if (stride == 0 || stride > length) {
        throw usage_error(fmt::format("--stride must be between 1 and --length ({})", length));
    }
    if (stream.size() < length) {
        throw data_error(source, "",
                         fmt::format("the text gives {} tokens, fewer than one window of {}",
                                     stream.size(), length));
    }
    Windows w;
    w.length = length;
    w.count = (stream.size() - length) / stride + 1;
    w.ids.reserve(w.count * length);
    w.scored.reserve(w.count * length);
    for (std::size_t k = 0; k < w.count; ++k) {
        const auto first = stream.begin() + static_cast<std::ptrdiff_t>(k * stride);
        w.ids.insert(w.ids.end(), first, first + static_cast<std::ptrdiff_t>(length));
        const std::size_t first_scored = k == 0 ? 1 : std::max<std::size_t>(1, length - stride);
        for (std::size_t t = 0; t < length; ++t) w.scored.push_back(t >= first_scored ? 1 : 0);
    }
    w.dropped = stream.size() - ((w.count - 1) * stride + length);
    return w;
}

}  // namespace ropekit
