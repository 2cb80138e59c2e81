#pragma once
// GPT-2's byte-to-unicode map (byte-level BPE): every byte becomes a printable character, so
// merges and vocabularies are plain strings. Bytes 33-126, 161-172 and 174-255 map to themselves;
// the other 68 bytes map to U+0100 onwards in byte order ("Ġ" is the space).
#include <array>
#include <string>
#include <string_view>

namespace ropekit::byte_level {

// UTF-8 of the character each byte maps to.
const std::array<std::string, 256>& byte_chars();
// `bytes` with every byte replaced by its character.
std::string encode(std::string_view bytes);
// The inverse: characters of the map back to their bytes; any other character is kept as its
// own UTF-8 (Hugging Face's ByteLevel decoder does the same).
std::string decode(std::string_view text);
// The bytes of `text` if every character of it is in the map; false (and `out` unchanged)
// otherwise.
bool decode_exact(std::string_view text, std::string& out);
// Bytes the token stands for (characters outside the map count their UTF-8 bytes).
std::size_t byte_count(std::string_view text);

}  // namespace ropekit::byte_level
