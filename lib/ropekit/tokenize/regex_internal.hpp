#pragma once
// The pre-tokenizers' regular expressions through PCRE2 (UTF-8, Unicode properties, JIT).
// Hugging Face compiles them with Oniguruma; for the patterns tokenizer files use (\p{L}, \p{N},
// \s with every Unicode space including U+0085, (?i:...), lookahead) PCRE2 with PCRE2_UCP
// matches the same, which the corpus test checks against Hugging Face's library.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ropekit {

class Regex {
  public:
    // `where` names the pattern's origin in the data_error thrown if it does not compile.
    Regex(const std::string& pattern, const std::string& where);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Non-overlapping matches, left to right, as [begin, end) byte offsets. `text` must be
    // valid UTF-8.
    void find_all(std::string_view text,
                  std::vector<std::pair<std::size_t, std::size_t>>& out) const;

    struct Compiled;

  private:
    std::unique_ptr<Compiled> compiled_;
};

}  // namespace ropekit
