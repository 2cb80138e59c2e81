#pragma once
// Normalizers of tokenizer.json files: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD and Strip.
// Any other type is refused by name.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropekit/tokenize/regex_internal.hpp"
#include "ropekit/tokenize/unicode_normalize_internal.hpp"

namespace ropekit {

class Normalizer {
  public:
    // `spec` is the file's "normalizer" value (null = none); errors name `source`.
    static Normalizer from_json(const nlohmann::json& spec, const std::string& source);

    void prepend(std::string text);
    void replace(std::string from, std::string to);
    void unicode(NormalForm form);

    bool empty() const { return steps_.empty(); }
    std::string apply(std::string_view text) const;

  private:
    enum class Kind { prepend, replace_string, replace_regex, unicode, strip };
    struct Step {
        Kind kind;
        std::string text, content;  // prepend / pattern and replacement
        std::shared_ptr<Regex> regex;
        NormalForm form = NormalForm::nfc;
        bool left = false, right = false;  // strip
    };
    void add(const nlohmann::json& spec, const std::string& source);
    static std::string apply(const Step& step, std::string text);

    std::vector<Step> steps_;
};

// The string of a {"String": s} or {"Regex": r} pattern, and whether it is a regex.
std::pair<std::string, bool> pattern_of(const nlohmann::json& pattern, const std::string& source,
                                        const std::string& where);
// `text` with every match of `from` (a literal) replaced by `to`.
std::string replace_all(std::string text, std::string_view from, std::string_view to);
std::string replace_all(const std::string& text, const Regex& from, std::string_view to);

}  // namespace ropekit
