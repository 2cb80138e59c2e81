#pragma once
// From a text file to model inputs: documents (one per line, or the whole text) encoded and joined
// into one stream of ids with the tokenizer's own separators, cut into windows of equal length.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

// Where a text comes from and how it is cut (rope-dump --text, --stride, --whole).
struct TextSource {
    std::string path;        // '-' = stdin
    std::size_t stride = 0;  // 0 = the window length: windows do not overlap
    bool whole = false;      // the text is one document, not one per line
};

// A whole text file, or standard input for "-" (data_error naming it if unreadable).
std::string read_text(const std::string& path);

// Calls `line(number, text)` for every line of `text` (split at '\n', which is not part of the
// line; a last line without '\n' counts, an empty text has no lines). '\r' is kept: it is text.
void for_each_line(std::string_view text,
                   const std::function<void(std::size_t, std::string_view)>& line);

struct TokenStream {
    std::vector<TokenId> ids;
    std::size_t documents = 0;
};

// Each document is encode()d (with the BOS/EOS the tokenizer adds); when the tokenizer adds
// neither, its EOS token (if it has one) follows every document, as GPT-2 style corpora are
// joined. Documents are the non-empty lines, or the whole text with `whole`. Errors name
// `source` and the line.
TokenStream encode_documents(const Tokenizer& tokenizer, std::string_view text, bool whole,
                             const std::string& source);

struct Windows {
    std::size_t count = 0, length = 0;
    std::vector<TokenId> ids;          // [count, length]
    std::vector<std::uint8_t> scored;  // [count, length]: 1 where the NLL counts
    std::size_t dropped = 0;           // tokens at the end that fill no whole window
};

// Windows of `length` tokens starting every `stride` tokens (stride = length: non-overlapping).
// Hugging Face's sliding-window perplexity protocol: the first window scores positions 1 ..
// length-1, each later one only the `stride` tokens the previous window did not hold (and never
// its position 0). data_error if the stream is shorter than one window.
Windows cut_windows(const std::vector<TokenId>& stream, std::size_t length, std::size_t stride,
                    const std::string& source);

}  // namespace ropekit
