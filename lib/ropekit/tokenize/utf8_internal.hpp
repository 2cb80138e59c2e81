#pragma once
// UTF-8 as the tokenizers see it: code points one at a time, and byte strings made valid the way
// Rust's String::from_utf8_lossy does (each maximal invalid subsequence becomes one U+FFFD), so
// decoded text matches Hugging Face's byte for byte.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ropekit::utf8 {

// Length of the UTF-8 sequence starting at text[at] (1 for an invalid lead byte, and never past
// the end), so a loop over characters always advances.
std::size_t char_length(std::string_view text, std::size_t at);
// The code point starting at text[at] (U+FFFD for an invalid sequence); `length` receives its
// byte count as char_length would.
char32_t decode(std::string_view text, std::size_t at, std::size_t& length);
void append(std::string& out, char32_t code_point);
bool is_valid(std::string_view bytes);
std::string lossy(std::string_view bytes);
// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_whitespace(char32_t c);

}  // namespace ropekit::utf8
