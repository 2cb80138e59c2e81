#include "ropekit/core/index_spec.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

namespace {

// A whole number, or -k for "k-th from the end".
std::size_t parse_index(const std::string& text, std::size_t count, const std::string& option,
                        const std::string& spec) {
    const bool from_end = !text.empty() && text[0] == '-';
    const std::string digits = from_end ? text.substr(1) : text;
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](unsigned char c) { return std::isdigit(c); })) {
        throw usage_error(
            fmt::format("{}: cannot read '{}' in '{}' (expected e.g. all, 3, 0-3,7 or -1)", option,
                        text, spec));
    }
    const std::size_t value = std::stoul(digits);
    if (from_end) {
        if (value == 0 || value > count) {
            throw usage_error(
                fmt::format("{}: '{}' is out of range (there are {})", option, text, count));
        }
        return count - value;
    }
    if (value >= count) {
        throw usage_error(
            fmt::format("{}: index {} is past the last one ({})", option, value,
                        count == 0 ? std::string("none") : std::to_string(count - 1)));
    }
    return value;
}

}  // namespace

std::vector<std::string> split_list(const std::string& text, char separator) {
    std::vector<std::string> items;
    std::size_t begin = 0;
    while (true) {
        const std::size_t end = text.find(separator, begin);
        items.push_back(text.substr(begin, end == std::string::npos ? end : end - begin));
        if (end == std::string::npos) return items;
        begin = end + 1;
    }
}

std::vector<std::size_t> parse_index_spec(const std::string& spec, std::size_t count,
                                          const std::string& option) {
    std::vector<std::size_t> out;
    if (spec == "all" || spec.empty()) {
        for (std::size_t i = 0; i < count; ++i) out.push_back(i);
        return out;
    }
    for (const std::string& item : split_list(spec)) {
        // A range "a-b": the dash that is not a leading minus.
        const std::size_t dash = item.find('-', 1);
        if (dash != std::string::npos && !item.empty() && item[0] != '-') {
            const std::size_t lo = parse_index(item.substr(0, dash), count, option, spec);
            const std::size_t hi = parse_index(item.substr(dash + 1), count, option, spec);
            if (lo > hi) throw usage_error(fmt::format("{}: empty range '{}'", option, item));
            for (std::size_t i = lo; i <= hi; ++i) out.push_back(i);
        } else {
            out.push_back(parse_index(item, count, option, spec));
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace ropekit
