#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit::utf8 {

namespace {

// Bytes of a well-formed sequence that begins with `lead` and has `next` as its second byte, or
// 0 if the two cannot start one (Unicode Table 3-7: no overlongs, surrogates or > U+10FFFF).
std::size_t well_formed_length(unsigned char lead, unsigned char next) {
    const bool cont = (next & 0xC0) == 0x80;
    if (lead >= 0xC2 && lead <= 0xDF) return cont ? 2 : 0;
    if (lead == 0xE0) return next >= 0xA0 && next <= 0xBF ? 3 : 0;
    if (lead == 0xED) return next >= 0x80 && next <= 0x9F ? 3 : 0;
    if (lead >= 0xE1 && lead <= 0xEF) return cont ? 3 : 0;
    if (lead == 0xF0) return next >= 0x90 && next <= 0xBF ? 4 : 0;
    if (lead == 0xF4) return next >= 0x80 && next <= 0x8F ? 4 : 0;
    if (lead >= 0xF1 && lead <= 0xF3) return cont ? 4 : 0;
    return 0;
}

// Bytes of the valid character at `at`, or 0 with `invalid` = the length of the maximal
// invalid subsequence there (the part that becomes one U+FFFD).
std::size_t valid_length(std::string_view text, std::size_t at, std::size_t& invalid) {
    const auto lead = static_cast<unsigned char>(text[at]);
    invalid = 1;
    if (lead < 0x80) return 1;
    if (at + 1 >= text.size()) return 0;
    const std::size_t want = well_formed_length(lead, static_cast<unsigned char>(text[at + 1]));
    if (want == 0) return 0;
    std::size_t have = 2;
    while (have < want && at + have < text.size() &&
           (static_cast<unsigned char>(text[at + have]) & 0xC0) == 0x80) {
        ++have;
    }
    if (have == want) return want;
    invalid = have;
    return 0;
}

}  // namespace

std::size_t char_length(std::string_view text, std::size_t at) {
    std::size_t invalid = 0;
    const std::size_t n = valid_length(text, at, invalid);
    return n ? n : invalid;
}

char32_t decode(std::string_view text, std::size_t at, std::size_t& length) {
    std::size_t invalid = 0;
    length = valid_length(text, at, invalid);
    if (length == 0) {
        length = invalid;
        return 0xFFFD;
    }
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
    switch (length) {
        case 1:
            return byte(0);
        case 2:
            return (char32_t(byte(0) & 0x1F) << 6) | (byte(1) & 0x3F);
        case 3:
            return (char32_t(byte(0) & 0x0F) << 12) | (char32_t(byte(1) & 0x3F) << 6) |
                   (byte(2) & 0x3F);
        default:
            return (char32_t(byte(0) & 0x07) << 18) | (char32_t(byte(1) & 0x3F) << 12) |
                   (char32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
    }
}

void append(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

bool is_valid(std::string_view bytes) {
    for (std::size_t at = 0, invalid = 0; at < bytes.size();) {
        const std::size_t n = valid_length(bytes, at, invalid);
        if (n == 0) return false;
        at += n;
    }
    return true;
}

std::string lossy(std::string_view bytes) {
    if (is_valid(bytes)) return std::string(bytes);
    std::string out;
    for (std::size_t at = 0, invalid = 0; at < bytes.size();) {
        const std::size_t n = valid_length(bytes, at, invalid);
        if (n) {
            out.append(bytes.substr(at, n));
            at += n;
        } else {
            out += "\xEF\xBF\xBD";
            at += invalid;
        }
    }
    return out;
}

bool is_whitespace(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

}  // namespace ropekit::utf8
