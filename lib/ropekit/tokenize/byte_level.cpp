#include "ropekit/tokenize/byte_level_internal.hpp"

#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit::byte_level {

namespace {

bool maps_to_itself(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

std::array<char32_t, 256> make_code_points() {
    std::array<char32_t, 256> code_points{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) code_points[b] = maps_to_itself(b) ? char32_t(b) : next++;
    return code_points;
}

const std::array<char32_t, 256>& code_points() {
    static const std::array<char32_t, 256> table = make_code_points();
    return table;
}

// Code point -> byte for the 324 code points of the map, -1 elsewhere.
const std::array<int, 324>& inverse() {
    static const std::array<int, 324> table = [] {
        std::array<int, 324> t{};
        t.fill(-1);
        for (int b = 0; b < 256; ++b) t[code_points()[b]] = b;
        return t;
    }();
    return table;
}

}  // namespace

const std::array<std::string, 256>& byte_chars() {
    static const std::array<std::string, 256> table = [] {
        std::array<std::string, 256> t;
        for (int b = 0; b < 256; ++b) utf8::append(t[b], code_points()[b]);
        return t;
    }();
    return table;
}

std::string encode(std::string_view bytes) {
    const auto& chars = byte_chars();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char c : bytes) out += chars[static_cast<unsigned char>(c)];
    return out;
}

std::string decode(std::string_view text) {
    std::string out;
    for (std::size_t at = 0, n = 0; at < text.size(); at += n) {
        const char32_t c = utf8::decode(text, at, n);
        if (c < 324 && inverse()[c] >= 0) {
            out += static_cast<char>(inverse()[c]);
        } else {
            out.append(text.substr(at, n));
        }
    }
    return out;
}

bool decode_exact(std::string_view text, std::string& out) {
    std::string bytes;
    for (std::size_t at = 0, n = 0; at < text.size(); at += n) {
        const char32_t c = utf8::decode(text, at, n);
        if (c >= 324 || inverse()[c] < 0) return false;
        bytes += static_cast<char>(inverse()[c]);
    }
    out += bytes;
    return true;
}

std::size_t byte_count(std::string_view text) {
    std::size_t count = 0;
    for (std::size_t at = 0, n = 0; at < text.size(); at += n) {
        const char32_t c = utf8::decode(text, at, n);
        count += c < 324 && inverse()[c] >= 0 ? 1 : n;
    }
    return count;
}

}  // namespace ropekit::byte_level
