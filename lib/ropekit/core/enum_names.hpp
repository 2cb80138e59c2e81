#pragma once
// Enums spelled as words on the command line and in files. One table per enum gives both
// directions, so a name and its parser cannot drift apart:
//   constexpr EnumNames<Layout, 2> kLayoutNames{{{Layout::half, "half"}, ...}};
//   enum_name(kLayoutNames, Layout::half) == "half"
//   parse_enum(kLayoutNames, "half", "--layout") == Layout::half
// The first spelling of a value is its name; later spellings of the same value are aliases that
// are accepted but not listed in the error message.
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ropekit/core/error.hpp"

namespace ropekit {

template <class E>
struct EnumSpelling {
    E value;
    const char* name;
};

template <class E, std::size_t N>
using EnumNames = std::array<EnumSpelling<E>, N>;

template <class E, std::size_t N>
const char* enum_name(const EnumNames<E, N>& names, E value) {
    for (const EnumSpelling<E>& s : names) {
        if (s.value == value) return s.name;
    }
    return "?";
}

template <class E, std::size_t N>
std::optional<E> find_enum(const EnumNames<E, N>& names, std::string_view text) {
    for (const EnumSpelling<E>& s : names) {
        if (text == s.name) return s.value;
    }
    return std::nullopt;
}

// "a, b or c": every value's name, aliases left out.
template <class E, std::size_t N>
std::string enum_choices(const EnumNames<E, N>& names) {
    std::vector<const char*> listed;
    for (const EnumSpelling<E>& s : names) {
        if (s.name == enum_name(names, s.value)) listed.push_back(s.name);  // the first spelling
    }
    std::string out;
    for (std::size_t i = 0; i < listed.size(); ++i) {
        if (i) out += i + 1 == listed.size() ? " or " : ", ";
        out += listed[i];
    }
    return out;
}

// The value spelled `text`; usage_error "OPTION: unknown value 'x' (expected a, b or c)".
template <class E, std::size_t N>
E parse_enum(const EnumNames<E, N>& names, const std::string& text, const std::string& option) {
    if (const std::optional<E> value = find_enum(names, text)) return *value;
    throw usage_error(option + ": unknown value '" + text + "' (expected " + enum_choices(names) +
                      ")");
}

}  // namespace ropekit
