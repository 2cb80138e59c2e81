#pragma once
// The pre-tokenizers' regular expressions through PCRE2 (UTF-8, Unicode properties, JIT).
// Hugging Face compiles them with Oniguruma, whose \s is Unicode White_Space; PCRE2's \s lacks
// U+0085 (NEL), so patterns are translated to add it (tested against Hugging Face's library).
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

// The pattern with Oniguruma's \s and \S spelled out for PCRE2; throws std::invalid_argument for
// a \S inside a character class (which cannot be spelled out there).
std::string oniguruma_to_pcre2(const std::string& pattern);

}  // namespace ropekit
